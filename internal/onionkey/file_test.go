package onionkey

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// mode returns the permission bits of path.
func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// names lists dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, e := range es {
		ns = append(ns, e.Name())
	}
	return ns
}

// writeFile writes a file for a test.
func writeFile(t *testing.T, path string, data []byte, perm fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // despite the umask
		t.Fatal(err)
	}
}

func TestLoadOrCreate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "onion")
	path := filepath.Join(dir, SecretFileName)

	k, created, err := LoadOrCreate(path)
	if err != nil || !created || k.IsZero() {
		t.Fatalf("first call: %v, created %v, %v", k, created, err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("key file mode %04o, want 0600", m)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("new directory mode %04o, want 0700", m)
	}
	if ns := names(t, dir); len(ns) != 1 || ns[0] != SecretFileName {
		t.Errorf("directory holds %v, want only the key (no temporary file)", ns)
	}
	b, _ := os.ReadFile(path)
	if !bytes.Equal(b, k.SecretFile()) {
		t.Errorf("file holds %q, want the key's secret file", b)
	}

	k2, created, err := LoadOrCreate(path)
	if err != nil || created || !k2.Equal(k) {
		t.Fatalf("second call: %v, created %v, %v; want the same key", k2, created, err)
	}
	k3, err := Load(path)
	if err != nil || !k3.Equal(k) {
		t.Fatalf("Load: %v, %v", k3, err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing): %v", err)
	}
}

// TestLoadOrCreateKeepsBadFiles: a file that is not a usable key is an error and is
// never replaced.
func TestLoadOrCreateKeepsBadFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := rfcKey(t).SecretFile()
	for _, c := range []struct {
		name string
		data []byte
		perm fs.FileMode
		want error  // nil: just some error
		msg  string // in the message
	}{
		{"garbage", []byte("not a key\n"), 0o600, ErrLength, "left untouched"},
		{"empty", nil, 0o600, ErrLength, "left untouched"},
		{"truncated", good[:80], 0o600, ErrLength, "left untouched"},
		{"public key file", rfcKey(t).PublicFile(), 0o600, ErrLength, ""},
		{"wrong header", append([]byte("== ed25519v1-secret: type1 ==\x00\x00\x00"), good[32:]...), 0o600, ErrHeader, ""},
		{"world readable", good, 0o644, ErrPermissions, "chmod 600"},
		{"group readable", good, 0o640, ErrPermissions, "chmod 600"},
		{"group writable", good, 0o620, ErrPermissions, "chmod 600"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
		writeFile(t, path, c.data, c.perm)
		k, created, err := LoadOrCreate(path)
		if !errors.Is(err, c.want) || created || !k.IsZero() || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, created %v, err %v", c.name, k, created, err)
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, c.data) {
			t.Errorf("%s: file changed to %q", c.name, b)
		}
		if m := mode(t, path); m != c.perm {
			t.Errorf("%s: mode changed to %04o", c.name, m)
		}
	}
	// A directory where the key should be.
	sub := filepath.Join(dir, "subdir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(sub); err == nil {
		t.Error("a directory was accepted as a key file")
	}
}

// TestLoadOrCreateConcurrent: racing creators end up with one key, created once.
func TestLoadOrCreateConcurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), SecretFileName)
	const n = 8
	keys := make([]Key, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], created[i], errs[i] = LoadOrCreate(path) })
	}
	wg.Wait()
	ncreated := 0
	for i := range n {
		if errs[i] != nil || !keys[i].Equal(keys[0]) {
			t.Errorf("caller %d: %v, %v", i, keys[i], errs[i])
		}
		if created[i] {
			ncreated++
		}
	}
	if ncreated != 1 {
		t.Errorf("%d callers created the key, want 1", ncreated)
	}
	if ns := names(t, filepath.Dir(path)); len(ns) != 1 {
		t.Errorf("directory holds %v", ns)
	}
}

func TestWriteSecretFileNeverOverwrites(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), SecretFileName)
	writeFile(t, path, []byte("precious"), 0o600)
	k, _ := Generate()
	if err := WriteSecretFile(path, k); !errors.Is(err, fs.ErrExist) {
		t.Errorf("WriteSecretFile over a file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Errorf("file changed to %q", b)
	}
	// Not even a dangling symlink is replaced.
	link := filepath.Join(filepath.Dir(path), "link")
	if err := os.Symlink(filepath.Join(filepath.Dir(path), "nowhere"), link); err != nil {
		t.Fatal(err)
	}
	if err := WriteSecretFile(link, k); !errors.Is(err, fs.ErrExist) {
		t.Errorf("WriteSecretFile over a dangling symlink: %v", err)
	}
	if err := WriteSecretFile(filepath.Join(filepath.Dir(path), "zero"), Key{}); err == nil {
		t.Error("the zero key was written")
	}
}

func TestImport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k, _ := Generate()
	other, _ := Generate()

	src := filepath.Join(dir, "mkp224o", SecretFileName)
	if err := os.MkdirAll(filepath.Dir(src), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, src, k.SecretFile(), 0o644) // the source's mode does not matter
	dst := filepath.Join(dir, "data", "onion", SecretFileName)

	got, err := Import(src, dst)
	if err != nil || !got.Equal(k) {
		t.Fatalf("Import: %v, %v", got, err)
	}
	if m := mode(t, dst); m != 0o600 {
		t.Errorf("imported file mode %04o", m)
	}
	if l, err := Load(dst); err != nil || !l.Equal(k) {
		t.Errorf("Load(dst): %v, %v", l, err)
	}
	// Again: the same key is already there.
	if got, err := Import(src, dst); err != nil || !got.Equal(k) {
		t.Errorf("second Import: %v, %v", got, err)
	}
	// A different key: refused, dst unchanged.
	src2 := filepath.Join(dir, "other")
	writeFile(t, src2, other.SecretFile(), 0o600)
	if got, err := Import(src2, dst); !errors.Is(err, ErrKeyMismatch) || !got.IsZero() ||
		!strings.Contains(err.Error(), k.Onion()) || !strings.Contains(err.Error(), other.Onion()) {
		t.Errorf("Import of a different key: %v, %v", got, err)
	}
	if l, _ := Load(dst); !l.Equal(k) {
		t.Error("dst was overwritten")
	}

	// Control-port blobs, bare or as tor's reply line, with white space.
	for i, text := range []string{other.ControlBlob(), other.ControlBlob() + "\n", "  PrivateKey=" + other.ControlBlob() + "\r\n"} {
		blob := filepath.Join(dir, "blob")
		writeFile(t, blob, []byte(text), 0o600)
		dst2 := filepath.Join(dir, "blobdst", string(rune('a'+i)))
		if got, err := Import(blob, dst2); err != nil || !got.Equal(other) {
			t.Errorf("Import of blob %q: %v, %v", text, got, err)
		}
		if b, _ := os.ReadFile(dst2); !bytes.Equal(b, other.SecretFile()) {
			t.Errorf("blob %q: dst holds %q", text, b)
		}
	}

	// Bad sources: nothing is written.
	bad := filepath.Join(dir, "bad")
	dst3 := filepath.Join(dir, "never", SecretFileName)
	for _, c := range []struct {
		data []byte
		want error
	}{
		{[]byte("hello"), nil},
		{k.SecretFile()[:90], ErrLength},
		{[]byte("ED25519-V3:AAAA"), ErrControlBlob},
		{[]byte("RSA1024:" + strings.Repeat("A", 800)), nil},
	} {
		writeFile(t, bad, c.data, 0o600)
		_, err := Import(bad, dst3)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) || !strings.Contains(err.Error(), bad) {
			t.Errorf("Import of %q: %v", c.data, err)
		}
	}
	if _, err := Import(filepath.Join(dir, "missing"), dst3); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Import of a missing file: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(dst3)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed import created %s: %v", filepath.Dir(dst3), err)
	}

	// A corrupt destination is neither used nor replaced.
	corrupt := filepath.Join(dir, "corrupt")
	writeFile(t, corrupt, []byte("junk"), 0o600)
	if _, err := Import(src, corrupt); err == nil || errors.Is(err, ErrKeyMismatch) {
		t.Errorf("Import onto a corrupt file: %v", err)
	}
	if b, _ := os.ReadFile(corrupt); string(b) != "junk" {
		t.Errorf("corrupt dst changed to %q", b)
	}
}
