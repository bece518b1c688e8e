package process

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/crash"
)

// Provision starts one new process for spec and records it. It returns once
// the process has started (not once it listens or is healthy).
//
// Before anything is created it checks the spec (a process service, molt's
// labels, env names) and the digest of the executable: the one in
// spec.Resolved[ResolvedSHA256] (what Resolve returned when the plan was
// made) or, without one, the one Resolve would return now. A digest that
// differs from the service's pin Process.SHA256, or a failed check, is an
// error wrapping targets.ErrInvalidSpec.
//
// The process runs the artifact store's copy of that digest,
// Artifacts/sha256/<digest>, with argv[0] as the command wrote it: every
// instance of a generation runs the same file whatever happens at the
// command's path later. When the store lacks the digest, Provision copies
// the file at the command's path into it (as Resolve finds it); if that
// file no longer has the digest (it changed since the plan) Provision
// fails with a plain error, to be retried with a new plan. The store is
// shared by all instances and is pruned by Retire and PruneArtifacts.
//
// Its environment is PATH and HOME, the service's env, the values of its
// secretEnv (spec.SecretEnv) and molt's own variables; none of it is
// recorded (instance.json holds no environment) or logged.
//
// The process runs in its instance directory, in a session of its own,
// stdin from /dev/null and stdout and stderr appended to the instance log.
// The instance directory is assembled under a hidden name and renamed into
// place once instance.json (which names the digest) is written, so List
// never sees half an instance.
//
// A cancelled ctx stops Provision before the process starts; once it has
// started, the instance is complete and ctx no longer matters (it never
// stops the instance). On error nothing is left behind, a copy made into
// the store included.
func (t *Target) Provision(ctx context.Context, spec targets.Spec) (targets.Instance, error) {
	inst, err := t.provision(ctx, spec)
	if err != nil {
		return targets.Instance{}, fmt.Errorf("provision %s: %w", spec.Labels.Service, err)
	}
	return inst, nil
}

func (t *Target) provision(ctx context.Context, spec targets.Spec) (targets.Instance, error) {
	if err := checkSpec(spec); err != nil {
		return targets.Instance{}, err
	}
	digest, err := t.plannedDigest(spec)
	if err != nil {
		return targets.Instance{}, err
	}
	if err := ctx.Err(); err != nil {
		return targets.Instance{}, err
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return targets.Instance{}, errClosed
	}
	t.sweepFirst(ctx)

	id, err := newID(spec.Labels)
	if err != nil {
		return targets.Instance{}, err
	}
	ports, err := t.assignPorts(spec.Service.Ports)
	if err != nil {
		return targets.Instance{}, err
	}
	// From ensuring the artifact until the instance record names it, no
	// prune may run: it would see the artifact unused.
	t.store.RLock()
	added, err := t.ensureArtifact(ctx, digest, spec.Service.Process.Command[0])
	if errors.Is(err, errChanged) && spec.Service.Process.SHA256 != "" {
		// A pinned digest that neither the file nor the store has cannot
		// come back by retrying: only a new commit (or the file) can fix it.
		err = fmt.Errorf("%w: pinned sha256 %s is not in the artifact store and %w", targets.ErrInvalidSpec, digest, err)
	}
	var (
		cmd *exec.Cmd
		rec *record
	)
	if err == nil {
		cmd, rec, err = t.create(ctx, id, digest, spec, ports)
	}
	t.store.RUnlock()
	if err != nil {
		if added {
			t.dropArtifact(digest)
		}
		return targets.Instance{}, err
	}
	t.track(id, cmd)
	if _, err := t.rotateAll(ctx); err != nil {
		t.log.Warn("cannot rotate instance logs", "err", err)
	}
	t.log.Info("provisioned instance", "instance", id, "service", spec.Labels.Service,
		"pid", rec.PID, "ports", ports, "sha256", digest)
	return targets.Instance{
		ID:        id,
		Labels:    spec.Labels,
		State:     targets.Running,
		Endpoints: rec.endpoints(),
		Detail:    fmt.Sprintf("pid %d", rec.PID),
	}, nil
}

// plannedDigest returns the digest the instance of spec must run: the
// resolved one, else the one the executable has now.
func (t *Target) plannedDigest(spec targets.Spec) (string, error) {
	svc := spec.Service
	want := spec.Resolved[ResolvedSHA256]
	if want == "" {
		return t.resolve(svc, false)
	}
	if !validDigest(want) {
		return "", fmt.Errorf("%w: resolved sha256 %q is not 64 lower-case hex digits", targets.ErrInvalidSpec, want)
	}
	pin, err := pinOf(svc)
	if err != nil {
		return "", err
	}
	if pin != "" && pin != want {
		return "", fmt.Errorf("%w: the plan resolved the executable to sha256 %s, the spec pins %s",
			targets.ErrInvalidSpec, want, pin)
	}
	return want, nil
}

// create starts the process of instance id from the store file of digest
// in a staged instance directory, writes its record and moves the
// directory into place. The staged directory is locked, and holds the
// instance's intent before the process starts, so that a crash at any
// point leaves what the sweep can finish (see sweep). On error no process
// and no directory is left.
func (t *Target) create(ctx context.Context, id, digest string, spec targets.Spec, ports map[string]int) (*exec.Cmd, *record, error) {
	if err := os.MkdirAll(t.dir, 0o750); err != nil {
		return nil, nil, err
	}
	stage := filepath.Join(t.dir, stagePrefix+id)
	if err := os.Mkdir(stage, 0o750); err != nil {
		return nil, nil, err
	}
	lock, ok, err := lockDir(stage)
	if err == nil && !ok {
		err = errors.New("staged directory locked by another provision")
	}
	if err != nil {
		os.RemoveAll(stage)
		return nil, nil, err
	}
	defer lock.Close() // after the rename: the lock follows the directory
	exe := spec.Service.Process.Command[0]
	if abs, err := resolveExecutable(exe); err == nil {
		exe = abs
	}
	rec := &record{
		Version:   recordVersion,
		ID:        id,
		Labels:    spec.Labels,
		Command:   append([]string{exe}, spec.Service.Process.Command[1:]...),
		Artifact:  digest,
		Host:      t.host,
		Ports:     ports,
		StopGrace: duration(spec.Service.StopGrace),
	}
	if err := writeIntent(stage, rec); err != nil {
		os.RemoveAll(stage)
		return nil, nil, err
	}
	crash.At("provision.before-start")
	cmd, err := t.start(ctx, stage, id, digest, spec, ports, rec)
	if err != nil {
		os.RemoveAll(stage)
		return nil, nil, err
	}
	crash.At("provision.after-start")
	err = writeRecord(stage, rec)
	if err == nil {
		err = os.Rename(stage, filepath.Join(t.dir, id))
	}
	if err != nil {
		signalGroup(rec.PID, syscall.SIGKILL)
		cmd.Wait()
		os.RemoveAll(stage)
		return nil, nil, err
	}
	crash.At("provision.after-record")
	return cmd, rec, nil
}

// start starts the process of instance id in dir, running the store file
// of digest, and sets its pid, start time and boot in rec. On error no
// process is left running.
func (t *Target) start(ctx context.Context, dir, id, digest string, spec targets.Spec, ports map[string]int, rec *record) (*exec.Cmd, error) {
	env := t.instanceEnv(id, digest, spec, ports)
	logf, err := os.OpenFile(filepath.Join(dir, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	command := spec.Service.Process.Command
	newCmd := func() *exec.Cmd {
		return &exec.Cmd{
			Path:        t.artifactPath(digest),
			Args:        append([]string(nil), command...), // argv[0] as written
			Env:         env,
			Dir:         dir,
			Stdout:      logf, // an *os.File: handed to the child, no copying goroutine
			Stderr:      logf,
			SysProcAttr: sysProcAttr(),
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cmd, err := startBusy(newCmd)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	pid := cmd.Process.Pid
	st, err := readStat(pid) // the child is not reaped yet, so its pid is still its own
	if err != nil {
		signalGroup(pid, syscall.SIGKILL)
		cmd.Wait()
		return nil, fmt.Errorf("read start time: %w", err)
	}
	rec.PID, rec.StartTime, rec.BootID = pid, st.startTime, t.bootID
	return cmd, nil
}

// startBusy starts the command newCmd builds, again a few times while the
// kernel says the executable is busy: a store file just written may still
// be open for writing in a child that another goroutine forked and that
// has not yet reached its exec (golang.org/issue/22315).
func startBusy(newCmd func() *exec.Cmd) (*exec.Cmd, error) {
	for wait := time.Millisecond; ; wait *= 2 {
		cmd := newCmd()
		err := cmd.Start()
		if err == nil || !errors.Is(err, syscall.ETXTBSY) || wait > 200*time.Millisecond {
			return cmd, err
		}
		time.Sleep(wait)
	}
}

// checkSpec reports what makes spec impossible for this target.
func checkSpec(spec targets.Spec) error {
	svc := spec.Service
	l := spec.Labels
	switch {
	case svc == nil:
		return fmt.Errorf("%w: no service", targets.ErrInvalidSpec)
	case svc.Process == nil:
		return fmt.Errorf("%w: service %q is not a process service", targets.ErrInvalidSpec, svc.Name)
	case len(svc.Process.Command) == 0 || svc.Process.Command[0] == "":
		return fmt.Errorf("%w: empty command", targets.ErrInvalidSpec)
	case l.Fleet == "" || l.Service == "" || l.SpecHash == "":
		return fmt.Errorf("%w: fleet, service and spec hash labels are required", targets.ErrInvalidSpec)
	case svc.StopGrace < 0:
		return fmt.Errorf("%w: negative stop grace", targets.ErrInvalidSpec)
	}
	if err := targets.CheckEnv(spec); err != nil {
		return err
	}
	seen := make(map[string]string, len(svc.Ports))
	for name := range svc.Ports {
		v := targets.PortVar(name)
		if other, ok := seen[v]; ok || name == "" {
			return fmt.Errorf("%w: port names %q and %q both map to %s", targets.ErrInvalidSpec, other, name, v)
		}
		seen[v] = name
	}
	return nil
}

// newID returns "<service>-<specHash[:8]>-<6 random hex digits>".
func newID(l targets.Labels) (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	hash := l.SpecHash
	if len(hash) > 8 {
		hash = hash[:8]
	}
	return fmt.Sprintf("%s-%s-%x", idSafe(l.Service), idSafe(hash), b), nil
}

// idSafe keeps letters, digits, '-', '_' and '.', and replaces the rest.
func idSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '-'
	}, s)
	return strings.TrimLeft(s, ".")
}
