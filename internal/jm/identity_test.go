package jm

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLoadOrCreateIdentityCreatesAndReloads(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "sub", "data")
	id, created, err := LoadOrCreateIdentity(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("created = false for a new data dir")
	}
	if id.Key == nil || !ValidNick(id.Nick) {
		t.Fatalf("bad identity %+v", id)
	}
	if want := NickFromPubKey(id.Key.PubKey().SerializeCompressed()); id.Nick != want {
		t.Errorf("Nick = %q, key gives %q", id.Nick, want)
	}

	path := filepath.Join(dataDir, "directory-nick.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("key file mode %o, want 600", perm)
		}
		di, err := os.Stat(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		if perm := di.Mode().Perm(); perm != 0o700 {
			t.Errorf("data dir mode %o, want 700", perm)
		}
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(content) != 65 || content[64] != '\n' {
		t.Errorf("key file content %q: want 64 hex chars and a newline", content)
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only the key file (temp file left behind?)", len(entries))
	}

	id2, created2, err := LoadOrCreateIdentity(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if created2 {
		t.Error("created = true on second call")
	}
	if id2.Nick != id.Nick || !id2.Key.Key.Equals(&id.Key.Key) {
		t.Errorf("second call nick %q, first %q", id2.Nick, id.Nick)
	}
}

func TestLoadOrCreateIdentityKnownKey(t *testing.T) {
	for _, tc := range nickVectors {
		for _, suffix := range []string{"", "\n"} {
			t.Run(tc.name+"/"+strings.ReplaceAll(suffix, "\n", "newline"), func(t *testing.T) {
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "directory-nick.key"), []byte(tc.priv+suffix), 0o600); err != nil {
					t.Fatal(err)
				}
				id, created, err := LoadOrCreateIdentity(dir)
				if err != nil {
					t.Fatal(err)
				}
				if created {
					t.Error("created = true for an existing file")
				}
				if id.Nick != tc.nick {
					t.Errorf("Nick = %q, want %q", id.Nick, tc.nick)
				}
			})
		}
	}
}

func TestLoadOrCreateIdentityMalformed(t *testing.T) {
	valid := nickVectors[2].priv
	tests := []struct {
		name    string
		content string
	}{
		{"empty", ""},
		{"newline only", "\n"},
		{"upper-case hex", strings.ToUpper(valid)},
		{"63 chars", valid[:63]},
		{"65 chars", valid + "0"},
		{"two newlines", valid + "\n\n"},
		{"crlf", valid + "\r\n"},
		{"trailing space", valid + " "},
		{"leading space", " " + valid},
		{"non-hex", "g" + valid[1:]},
		{"zero key", strings.Repeat("0", 64)},
		{"key = n", "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"},
		{"key > n", strings.Repeat("f", 64)},
		{"long file", valid + "\n" + strings.Repeat("x", 4096)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "directory-nick.key")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			old := time.Now().Add(-time.Hour).Truncate(time.Second)
			if err := os.Chtimes(path, old, old); err != nil {
				t.Fatal(err)
			}
			_, created, err := LoadOrCreateIdentity(dir)
			if err == nil {
				t.Fatal("no error for malformed key file")
			}
			if created {
				t.Error("created = true with an error")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the path %q", err, path)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, []byte(tc.content)) {
				t.Errorf("malformed file was modified: %q", got)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.ModTime().Equal(old) {
				t.Errorf("malformed file mtime changed: %v, want %v", fi.ModTime(), old)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("data dir holds %d entries, want 1", len(entries))
			}
		})
	}
}

func TestLoadOrCreateIdentityErrors(t *testing.T) {
	t.Run("data dir is a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadOrCreateIdentity(file); err == nil {
			t.Error("no error when the data dir is a regular file")
		}
	})
	t.Run("key path is a directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "directory-nick.key"), 0o700); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateIdentity(dir)
		if err == nil {
			t.Fatal("no error when the key path is a directory")
		}
		if errors.Is(err, fs.ErrNotExist) {
			t.Errorf("unexpected not-exist error: %v", err)
		}
	})
	if runtime.GOOS != "windows" && os.Geteuid() != 0 {
		t.Run("unwritable data dir", func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o500); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(dir, 0o700)
			if _, _, err := LoadOrCreateIdentity(dir); err == nil {
				t.Error("no error for an unwritable data dir")
			}
		})
	}
}

// TestLoadOrCreateIdentityConcurrent checks that concurrent creators agree
// on one key and exactly one of them reports created.
func TestLoadOrCreateIdentityConcurrent(t *testing.T) {
	for round := 0; round < 10; round++ {
		dir := filepath.Join(t.TempDir(), "data")
		const n = 8
		var (
			wg      sync.WaitGroup
			ids     [n]Identity
			created [n]bool
			errs    [n]error
			start   = make(chan struct{})
		)
		for i := 0; i < n; i++ {
			wg.Go(func() {
				<-start
				ids[i], created[i], errs[i] = LoadOrCreateIdentity(dir)
			})
		}
		close(start)
		wg.Wait()
		nCreated := 0
		for i := 0; i < n; i++ {
			if errs[i] != nil {
				t.Fatalf("goroutine %d: %v", i, errs[i])
			}
			if ids[i].Nick != ids[0].Nick {
				t.Fatalf("goroutine %d got nick %q, goroutine 0 %q", i, ids[i].Nick, ids[0].Nick)
			}
			if created[i] {
				nCreated++
			}
		}
		if nCreated != 1 {
			t.Fatalf("%d callers report created, want 1", nCreated)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Fatalf("data dir holds %d entries, want 1", len(entries))
		}
	}
}

// TestLoadOrCreateIdentityPermissions: a key file that group or others can access is
// refused, with an error that names the file and the fix, and is left untouched; 0600 and
// 0400 are accepted.
func TestLoadOrCreateIdentityPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	valid := nickVectors[2].priv + "\n"
	for _, tc := range []struct {
		mode fs.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true},
		{0o644, false}, {0o640, false}, {0o604, false}, {0o620, false}, {0o602, false}, {0o610, false}, {0o666, false},
	} {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "directory-nick.key")
			if err := os.WriteFile(path, []byte(valid), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil { // not subject to the umask
				t.Fatal(err)
			}
			id, created, err := LoadOrCreateIdentity(dir)
			if tc.ok {
				if err != nil || created || id.Nick != nickVectors[2].nick {
					t.Fatalf("mode %04o: %+v, created %v, %v; want the stored key", tc.mode, id, created, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("mode %04o accepted", tc.mode)
			}
			if !errors.Is(err, ErrKeyPermissions) {
				t.Errorf("error %v does not wrap ErrKeyPermissions", err)
			}
			if want := "chmod 600 " + path; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			if id.Key != nil || created {
				t.Errorf("refused key returned: %+v, created %v", id, created)
			}
			got, rerr := os.ReadFile(path)
			fi, serr := os.Stat(path)
			if rerr != nil || serr != nil || string(got) != valid || fi.Mode().Perm() != tc.mode {
				t.Errorf("refused key file changed: %q, %v (%v, %v)", got, fi.Mode(), rerr, serr)
			}
		})
	}
}
