package onionkey

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// MaxPrefixLen is the longest prefix Search accepts (32^12 ≈ 1.2e18 expected tries
// is already far out of reach).
const MaxPrefixLen = 12

// ErrPrefix: a vanity prefix is empty, too long or not in the onion alphabet.
var ErrPrefix = errors.New("invalid onion prefix")

// CheckPrefix validates a vanity prefix and returns it in lowercase: 1..MaxPrefixLen
// characters of the onion address alphabet a-z and 2-7 (any case). Errors wrap
// ErrPrefix.
func CheckPrefix(prefix string) (string, error) {
	p := strings.ToLower(prefix)
	switch {
	case p == "":
		return "", fmt.Errorf("%w: empty", ErrPrefix)
	case len(p) > MaxPrefixLen:
		return "", fmt.Errorf("%w %q: %d characters, at most %d are searchable", ErrPrefix, prefix, len(p), MaxPrefixLen)
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return "", fmt.Errorf("%w %q: %q is not in the onion address alphabet (a-z and 2-7; no 0, 1, 8 or 9)", ErrPrefix, prefix, c)
		}
	}
	return p, nil
}

// Expected returns the expected number of keys to try before finding an address
// starting with prefix: 32^len(prefix).
func Expected(prefix string) float64 {
	return math.Pow(32, float64(len(prefix)))
}

// progressInterval is how often Search reports progress; shortened by tests.
var progressInterval = time.Second

// Search looks for a key whose onion address starts with prefix (see CheckPrefix; an
// invalid prefix is an error wrapping ErrPrefix) using workers goroutines (≤ 0: one per
// CPU, runtime.NumCPU). It returns the first key found, or ctx's error once ctx is
// done. If progress is not nil, it is called about once a second, from one goroutine at
// a time, with the number of keys tried so far.
//
// Like mkp224o, each worker starts from a random clamped scalar s and tries s, s+8,
// s+16, ... (adding 8·B to the public key is far cheaper than a new scalar
// multiplication; 8 keeps the scalar clamped); only the bytes of the public key that
// the prefix covers are compared. The key returned has a fresh random second half (the
// nonce key) and is re-derived and re-checked from scratch before it is returned.
func Search(ctx context.Context, prefix string, workers int, progress func(tried uint64)) (Key, error) {
	p, err := CheckPrefix(prefix)
	if err != nil {
		return Key{}, err
	}
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	m := newMatcher(p)

	parent := ctx
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	counters := make([]counter, workers)
	var (
		once   sync.Once
		result Key
		resErr error
		wg     sync.WaitGroup
	)
	for i := range workers {
		wg.Go(func() {
			k, err := searchWorker(ctx, m, randomStart, &counters[i].n)
			if err != nil && ctx.Err() != nil {
				return // stopped: another worker won, or parent is done
			}
			once.Do(func() { result, resErr = k, err })
			cancel()
		})
	}
	var pwg sync.WaitGroup
	if progress != nil {
		pwg.Go(func() {
			t := time.NewTicker(progressInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					var n uint64
					for i := range counters {
						n += counters[i].n.Load()
					}
					progress(n)
				}
			}
		})
	}
	wg.Wait()
	cancel()
	pwg.Wait()
	if !result.IsZero() || resErr != nil {
		return result, resErr
	}
	return Key{}, parent.Err()
}

// counter is a per-worker attempt counter on its own cache line.
type counter struct {
	n atomic.Uint64
	_ [56]byte
}

// matcher tests the first 64 bits of a public key against a prefix.
type matcher struct {
	prefix     string
	want, mask uint64
}

// newMatcher prepares the test for a valid lowercase prefix of at most 12 characters:
// base32 reads the key's bits most significant first, 5 per character.
func newMatcher(prefix string) matcher {
	m := matcher{prefix: prefix}
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		var d uint64
		if c >= 'a' {
			d = uint64(c - 'a')
		} else {
			d = uint64(c-'2') + 26
		}
		m.want |= d << (64 - 5*(i+1))
	}
	m.mask = ^uint64(0) << (64 - 5*len(prefix))
	return m
}

// matches reports whether a public key (at least 8 bytes of it) matches.
func (m matcher) matches(pub []byte) bool {
	return binary.BigEndian.Uint64(pub)&m.mask == m.want
}

// Search parameters.
const (
	// batch is how many keys share one field inversion (Montgomery's trick).
	batch = 256
	// restartAfter is how many consecutive keys a worker tries from one random start.
	restartAfter = 1 << 32
)

// eightB is 8·B, the public-key step between consecutive scalars s and s+8.
var eightB = func() *edwards25519.Point {
	var eight [32]byte
	eight[0] = 8
	s, err := edwards25519.NewScalar().SetCanonicalBytes(eight[:])
	if err != nil {
		panic(err)
	}
	return new(edwards25519.Point).ScalarBaseMult(s)
}()

// searchWorker runs one worker until it finds a key (returned), ctx is done
// (ctx.Err()) or something is badly wrong. start draws a starting scalar (randomStart
// but in tests); tried counts the keys tried.
func searchWorker(ctx context.Context, m matcher, start func() [32]byte, tried *atomic.Uint64) (Key, error) {
	var (
		pts    [batch]edwards25519.Point
		ys, zs [batch]field.Element
		acc    [batch]field.Element // acc[i] = zs[0]·…·zs[i]
	)
	for {
		s0 := start()
		sc, err := edwards25519.NewScalar().SetBytesWithClamping(s0[:])
		if err != nil {
			return Key{}, err
		}
		next := new(edwards25519.Point).ScalarBaseMult(sc) // (s0 + 8·off)·B
		for off := uint64(0); off < restartAfter; off += batch {
			if err := ctx.Err(); err != nil {
				return Key{}, err
			}
			pts[0].Set(next)
			for i := 1; i < batch; i++ {
				pts[i].Add(&pts[i-1], eightB)
			}
			next.Add(&pts[batch-1], eightB)
			for i := range pts {
				_, y, z, _ := pts[i].ExtendedCoordinates()
				ys[i].Set(y)
				zs[i].Set(z)
			}
			// Invert all Z at once: inv starts as 1/(z0…zn), peeling one factor per step.
			acc[0].Set(&zs[0])
			for i := 1; i < batch; i++ {
				acc[i].Multiply(&acc[i-1], &zs[i])
			}
			tried.Add(batch)
			var inv, zInv, y field.Element
			inv.Invert(&acc[batch-1])
			for i := batch - 1; i >= 0; i-- {
				if i > 0 {
					zInv.Multiply(&inv, &acc[i-1])
					inv.Multiply(&inv, &zs[i])
				} else {
					zInv.Set(&inv)
				}
				// The encoding of a public key is y (little-endian) with x's sign in the
				// top bit, which no prefix of ≤ 12 characters reaches.
				if m.matches(y.Multiply(&ys[i], &zInv).Bytes()) {
					return found(s0, off+uint64(i), m.prefix)
				}
			}
		}
	}
}

// randomStart returns a random clamped scalar that stays clamped (bit 255 clear) after
// adding 8·restartAfter.
func randomStart() [32]byte {
	for {
		var s [32]byte
		rand.Read(s[:]) // never fails (crypto/rand since Go 1.24)
		clamp(s[:])
		if end := addScalar(s, 8*restartAfter); end[31]&0x80 == 0 {
			return s
		}
	}
}

// addScalar returns s + v for a little-endian 256-bit s.
func addScalar(s [32]byte, v uint64) [32]byte {
	var out [32]byte
	carry := v
	for i := 0; i < 32; i += 8 {
		w, c := bits.Add64(binary.LittleEndian.Uint64(s[i:]), carry, 0)
		binary.LittleEndian.PutUint64(out[i:], w)
		carry = c
	}
	return out
}

// found builds the key for scalar s0 + 8·i with a random nonce half and checks it the
// slow way.
func found(s0 [32]byte, i uint64, prefix string) (Key, error) {
	var exp [ExpandedSize]byte
	s := addScalar(s0, 8*i)
	copy(exp[:32], s[:])
	rand.Read(exp[32:])
	k, err := FromExpanded(exp[:])
	if err != nil {
		return Key{}, fmt.Errorf("onionkey: search produced a bad scalar: %w", err)
	}
	if !strings.HasPrefix(k.Onion(), prefix) {
		return Key{}, fmt.Errorf("onionkey: search bug: key %s does not start with %q", k.Onion(), prefix)
	}
	return k, nil
}
