//go:build linux

package process

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// provisionResolved provisions svc with the resolved digest and retires it
// when the test ends.
func provisionResolved(t *testing.T, tgt *Target, svc *schema.Service, digest string) targets.Instance {
	t.Helper()
	spec := targets.Spec{Labels: labels(svc.Name), Service: svc, Resolved: map[string]string{ResolvedSHA256: digest}}
	inst, err := tgt.Provision(t.Context(), spec)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() {
		if err := tgt.Retire(t.Context(), inst.ID); err != nil {
			t.Errorf("cleanup: Retire: %v", err)
		}
	})
	return inst
}

// assertRunsFrom fails unless the process of inst runs the store file of
// digest, and that file has the digest and is read-only.
func assertRunsFrom(t *testing.T, tgt *Target, inst targets.Instance, digest string) {
	t.Helper()
	rec := mustRecord(t, tgt, inst.ID)
	if rec.Artifact != digest {
		t.Errorf("%s records artifact %q, want %s", inst.ID, rec.Artifact, digest)
	}
	exe := "/proc/" + strconv.Itoa(rec.PID) + "/exe"
	link, err := os.Readlink(exe)
	if err != nil {
		t.Fatal(err)
	}
	if want := tgt.artifactPath(digest); link != want {
		t.Errorf("%s runs %s, want %s", inst.ID, link, want)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if got := sum(b); got != digest {
		t.Errorf("%s runs an executable with sha256 %s, want %s", inst.ID, got, digest)
	}
	fi, err := os.Stat(tgt.artifactPath(digest))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o555 {
		t.Errorf("store file mode %v, want -r-xr-xr-x", fi.Mode())
	}
}

func assertStored(t *testing.T, tgt *Target, digest string, want bool) {
	t.Helper()
	_, err := os.Stat(tgt.artifactPath(digest))
	if got := err == nil; got != want {
		t.Errorf("store holds %s: %v (%v), want %v", digest[:12], got, err, want)
	}
}

// Instances of one generation run the same bytes, though the executable
// at the command's path is rebuilt between their provisions; the
// executable's argv[0] is the command as written.
func TestGenerationRunsOneExecutable(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	tgt.keep = 0 // prune at once: this test is about what is in use
	exe := filepath.Join(t.TempDir(), "app")
	v1 := writeExe(t, exe, "")
	svc := exeService(exe)
	svc.Env = map[string]string{"VERSION": "one"}
	digest := mustResolve(t, tgt, svc)

	a := provisionResolved(t, tgt, svc, digest)
	v2 := writeExe(t, exe, "rebuilt") // in place: the path is not busy
	b := provisionResolved(t, tgt, svc, digest)

	if digest != v1 {
		t.Fatalf("resolved %s, want %s", digest, v1)
	}
	for _, inst := range []targets.Instance{a, b} {
		assertRunsFrom(t, tgt, inst, v1)
		if got := waitGet(t, inst.Endpoints["http"], "/"); got != "hello from one\n" {
			t.Errorf("GET / = %q", got)
		}
	}
	rec := mustRecord(t, tgt, b.ID)
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(rec.PID) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if argv0, _, _ := strings.Cut(string(cmdline), "\x00"); argv0 != exe {
		t.Errorf("argv[0] = %q, want %q", argv0, exe)
	}

	// The next generation runs the rebuilt file; the old one is kept for
	// as long as one of its instances is, dead or alive.
	c := provisionResolved(t, tgt, svc, mustResolve(t, tgt, svc))
	assertRunsFrom(t, tgt, c, v2)
	if err := tgt.Retire(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	assertStored(t, tgt, v1, true)
	brec := mustRecord(t, tgt, b.ID)
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	killGroup(t, brec.PID)
	eventually(t, b.ID+" to be dead", func() bool { return !alive(brec.PID) })
	if n, err := tgt.PruneArtifacts(t.Context()); err != nil || n != 0 {
		t.Errorf("PruneArtifacts = %d, %v; want 0, nil", n, err)
	}
	assertStored(t, tgt, v1, true)

	// A pinned instance comes from the store though the file is gone.
	pinned := exeService(exe)
	pinned.Process.SHA256 = v1
	d := provisionResolved(t, tgt, pinned, mustResolve(t, tgt, pinned))
	assertRunsFrom(t, tgt, d, v1)

	for _, inst := range []targets.Instance{b, d} {
		if err := tgt.Retire(t.Context(), inst.ID); err != nil {
			t.Fatal(err)
		}
	}
	assertStored(t, tgt, v1, false)
	assertStored(t, tgt, v2, true)
	if err := tgt.Retire(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	assertStored(t, tgt, v2, false)
}

func killGroup(t *testing.T, pgid int) {
	t.Helper()
	if err := signalGroup(pgid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// A file that changed after the plan resolved it is not run: the error is
// transient (a new plan resolves the new file), and nothing stays.
func TestProvisionChangedSinceResolve(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	exe := filepath.Join(t.TempDir(), "app")
	svc := exeService(exe)
	v1 := writeExe(t, exe, "")
	v2 := writeExe(t, exe, "rebuilt")

	inst, err := tgt.Provision(t.Context(), targets.Spec{Labels: labels("hello"), Service: svc,
		Resolved: map[string]string{ResolvedSHA256: v1}})
	if err == nil {
		tgt.Retire(t.Context(), inst.ID)
		t.Fatal("Provision succeeded")
	}
	if errors.Is(err, targets.ErrInvalidSpec) {
		t.Errorf("Provision = %v, want a transient error", err)
	}
	if !strings.Contains(err.Error(), v1) || !strings.Contains(err.Error(), v2) {
		t.Errorf("error %q does not name both digests", err)
	}
	assertEmpty(t, tgt.dir)
	assertEmpty(t, tgt.artifactDir())
}

// The plan's digest must be the pinned one.
func TestProvisionResolvedAgainstPin(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	exe := filepath.Join(t.TempDir(), "app")
	v1 := writeExe(t, exe, "")
	for name, resolved := range map[string]string{
		"differs from the pin": strings.Repeat("0", 64),
		"malformed":            "../../etc/passwd",
	} {
		t.Run(name, func(t *testing.T) {
			svc := exeService(exe)
			svc.Process.SHA256 = v1
			_, err := tgt.Provision(t.Context(), targets.Spec{Labels: labels("hello"), Service: svc,
				Resolved: map[string]string{ResolvedSHA256: resolved}})
			if !errors.Is(err, targets.ErrInvalidSpec) {
				t.Fatalf("Provision = %v, want ErrInvalidSpec", err)
			}
			assertEmpty(t, tgt.dir)
			assertEmpty(t, tgt.artifactDir())
		})
	}
}

// A failed start takes back the copy it made; prune removes stale
// temporary files and nothing it does not know.
func TestPruneArtifacts(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	tgt.keep = 0
	notELF := filepath.Join(t.TempDir(), "not-elf")
	if err := os.WriteFile(notELF, []byte("no shebang, no ELF\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.Provision(t.Context(), targets.Spec{Labels: labels("cmd"), Service: command(notELF)}); err == nil {
		t.Fatal("Provision of a file that cannot run succeeded")
	}
	assertEmpty(t, tgt.artifactDir())

	dir := tgt.artifactDir()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{ // name: pruned
		strings.Repeat("a", 64): true,
		artifactTemp + "old":    true,
		artifactTemp + "new":    false,
		"README":                false,
	}
	for name := range files {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(filepath.Join(dir, artifactTemp+"old"), old, old); err != nil {
		t.Fatal(err)
	}
	n, err := tgt.PruneArtifacts(t.Context())
	if err != nil || n != 2 {
		t.Errorf("PruneArtifacts = %d, %v; want 2, nil", n, err)
	}
	for name, pruned := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if gone := errors.Is(err, os.ErrNotExist); gone != pruned {
			t.Errorf("%s gone: %v, want %v", name, gone, pruned)
		}
	}
}

// Prunes running beside provisions never delete an artifact that an
// instance runs or is about to run.
func TestProvisionBesidePrune(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	exe := filepath.Join(t.TempDir(), "app")
	digest := writeExe(t, exe, "")
	svc := exeService(exe)

	const n = 4
	insts := make([]targets.Instance, n)
	errs := make([]error, n)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := tgt.PruneArtifacts(t.Context()); err != nil {
				t.Errorf("PruneArtifacts: %v", err)
				return
			}
		}
	})
	var provs sync.WaitGroup
	for i := range n {
		provs.Go(func() {
			spec := targets.Spec{Labels: labels("hello"), Service: svc, Resolved: map[string]string{ResolvedSHA256: digest}}
			insts[i], errs[i] = tgt.Provision(t.Context(), spec)
		})
	}
	provs.Wait()
	close(done)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Provision #%d: %v", i, err)
			continue
		}
		t.Cleanup(func() { tgt.Retire(t.Context(), insts[i].ID) })
		assertRunsFrom(t, tgt, insts[i], digest)
	}
}

// An executable stays in the store for KeepArtifacts after its last
// instance went (a rollback soon after runs the same program, whatever
// the file at the path became), and goes after that.
func TestPruneKeepsRecentlyUsed(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	if tgt.keep != time.Hour {
		t.Fatalf("default keep %s, want 1h", tgt.keep)
	}
	exe := filepath.Join(t.TempDir(), "app")
	writeExe(t, exe, "")
	svc := exeService(exe)
	digest := mustResolve(t, tgt, svc)
	a := provisionResolved(t, tgt, svc, digest)
	if err := tgt.Retire(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	assertStored(t, tgt, digest, true)
	tgt.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if n, err := tgt.PruneArtifacts(t.Context()); err != nil || n != 1 {
		t.Fatalf("PruneArtifacts an hour later = %d, %v; want 1", n, err)
	}
	assertStored(t, tgt, digest, false)
}
