// Package secretfile writes small secret files (keys, tokens) the one way this server
// does it: mode 0600, atomically, and never over an existing file.
package secretfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// WriteNew writes data to path with mode 0600, creating the directory (mode 0700) if it
// is missing. It never replaces an existing file (or symlink): if path exists, the error
// wraps fs.ErrExist, and concurrent writers agree on exactly one winner.
//
// The write is atomic: data goes to a temporary file in the same directory, which is
// synced, hard-linked to path (a link fails if path exists) and removed. On a file
// system without hard links, path is created exclusively (O_EXCL) instead. The
// directory is synced so the new entry survives a crash where the platform allows it.
func WriteNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return exists(path)
	}
	tmp, err := writeTemp(dir, "."+filepath.Base(path)+".tmp-*", data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // the hard link, if made, keeps the data
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return exists(path)
		}
		// No hard links here (some FUSE and network file systems): create exclusively.
		if err := writeExclusive(path, data); err != nil {
			return err
		}
	}
	syncDir(dir)
	return nil
}

func exists(path string) error {
	return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
}

// writeTemp writes data to a new temporary file (mode 0600) in dir, synced, and returns
// its name.
func writeTemp(dir, pattern string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), fill(f, data)
}

// writeExclusive creates path (which must not exist) with mode 0600 and writes data.
func writeExclusive(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return exists(path)
	}
	if err != nil {
		return err
	}
	return fill(f, data)
}

// fill writes data to the new file f, syncs and closes it. On failure it removes the
// file (ours, and incomplete).
func fill(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	return nil
}

// syncDir fsyncs a directory so that a new entry survives a crash. Errors are ignored:
// some platforms and file systems cannot sync directories, and the file itself is
// already durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// ErrPermissions: an existing secret file is accessible by group or others. Nothing is
// read from it; the operator should chmod 600 it (CheckPrivate's error says so).
var ErrPermissions = errors.New("key file is accessible by group or others")

// CheckPrivate is the one rule for reading a secret file this server did not just
// write: fi (of the open file at path) must be a regular file that neither group nor
// others can access. The error wraps ErrPermissions and names the fix.
func CheckPrivate(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return fmt.Errorf("%s: %w (mode %04o); run: chmod 600 %s", path, ErrPermissions, perm, path)
	}
	return nil
}
