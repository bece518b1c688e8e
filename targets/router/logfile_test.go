//go:build linux

package router

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// logFD opens path for appending and returns a descriptor of it that the
// test owns, as a router's stdout is.
func logFD(t *testing.T, path string) int {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func writeFD(t *testing.T, fd int, s string) {
	t.Helper()
	if _, err := unix.Write(fd, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The router's log, when it is deleted or replaced, is reopened: the
// router writes into the file that has the name (before: into the
// deleted file, for as long as it ran); over its cap it is moved to
// router.log.1; a router.log whose directory is gone is not made again.
func TestKeepLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "router")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, logName)
	fd := logFD(t, path)
	writeFD(t, fd, "one\n")
	if err := keepLog(path, []int{fd}, 1<<20); err != nil {
		t.Fatal(err)
	}
	writeFD(t, fd, "two\n")
	if got := readString(t, path); got != "one\ntwo\n" {
		t.Fatalf("log %q after a look at an unchanged log", got)
	}

	// Deleted: made again, and written to.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := keepLog(path, []int{fd}, 1<<20); err != nil {
		t.Fatal(err)
	}
	writeFD(t, fd, "three\n")
	if got := readString(t, path); got != "three\n" {
		t.Fatalf("log %q after it was deleted, want the new line in a new file", got)
	}

	// Another file took the name (moved away by hand, made anew).
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := keepLog(path, []int{fd}, 1<<20); err != nil {
		t.Fatal(err)
	}
	writeFD(t, fd, "four\n")
	if got := readString(t, path); got != "new\nfour\n" {
		t.Fatalf("log %q after another file took its name", got)
	}

	// Over its cap: moved to router.log.1, the next lines in a new file.
	writeFD(t, fd, strings.Repeat("x", 100)+"\n")
	if err := keepLog(path, []int{fd}, 64); err != nil {
		t.Fatal(err)
	}
	writeFD(t, fd, "five\n")
	if got := readString(t, path); got != "five\n" {
		t.Fatalf("log %q after the cap, want only the new line", got)
	}
	if got := readString(t, path+".1"); !strings.HasPrefix(got, "new\nfour\nxxx") {
		t.Fatalf("router.log.1 %.20q, want what the log held", got)
	}

	// The directory gone: nothing is made again.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := keepLog(path, []int{fd}, 1<<20); err == nil {
		t.Error("no error for a log whose directory is gone")
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("the router's directory was made again for its log")
	}
}
