package process

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/molt-dev/molt/targets"
)

// Provision starts one new process for spec and records it. It returns once
// the process has started (not once it listens or is healthy).
//
// Before anything is created it checks the spec (a process service, molt's
// labels, env names) and, when the service pins Process.SHA256, the digest
// of the executable; a failed check returns an error wrapping
// targets.ErrInvalidSpec. The executable is resolved to an absolute path
// (a relative one against molt's working directory); the process runs in
// its instance directory, in a session of its own, stdin from /dev/null and
// stdout and stderr appended to the instance log. The instance directory
// is assembled under a hidden name and renamed into place once
// instance.json is written, so List never sees half an instance.
//
// A cancelled ctx stops Provision before the process starts; once it has
// started, the instance is complete and ctx no longer matters (it never
// stops the instance). On error nothing is left behind.
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
	svc := spec.Service
	exe, err := resolveExecutable(svc.Process.Command[0])
	if err != nil {
		return targets.Instance{}, err
	}
	if svc.Process.SHA256 != "" {
		if err := checkDigest(exe, svc.Process.SHA256); err != nil {
			return targets.Instance{}, err
		}
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

	id, err := newID(spec.Labels)
	if err != nil {
		return targets.Instance{}, err
	}
	ports, err := t.assignPorts(svc.Ports)
	if err != nil {
		return targets.Instance{}, err
	}
	if err := os.MkdirAll(t.dir, 0o750); err != nil {
		return targets.Instance{}, err
	}
	stage := filepath.Join(t.dir, ".provision-"+id)
	if err := os.Mkdir(stage, 0o750); err != nil {
		return targets.Instance{}, err
	}
	cmd, rec, err := t.start(ctx, stage, id, exe, spec, ports)
	if err != nil {
		os.RemoveAll(stage)
		return targets.Instance{}, err
	}
	err = writeRecord(stage, rec)
	if err == nil {
		err = os.Rename(stage, filepath.Join(t.dir, id))
	}
	if err != nil {
		signalGroup(rec.PID, syscall.SIGKILL)
		cmd.Wait()
		os.RemoveAll(stage)
		return targets.Instance{}, err
	}
	t.track(id, cmd)
	t.log.Info("provisioned instance", "instance", id, "service", spec.Labels.Service,
		"pid", rec.PID, "ports", ports)
	return targets.Instance{
		ID:        id,
		Labels:    spec.Labels,
		State:     targets.Running,
		Endpoints: rec.endpoints(),
		Detail:    fmt.Sprintf("pid %d", rec.PID),
	}, nil
}

// start starts the process of instance id in dir and returns its record.
// On error no process is left running.
func (t *Target) start(ctx context.Context, dir, id, exe string, spec targets.Spec, ports map[string]int) (*exec.Cmd, *record, error) {
	env := instanceEnv(id, spec, ports)
	logf, err := os.OpenFile(filepath.Join(dir, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close() // the child has its own descriptor
	command := spec.Service.Process.Command
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        append([]string(nil), command...),
		Env:         env,
		Dir:         dir,
		Stdout:      logf, // an *os.File: handed to the child, no copying goroutine
		Stderr:      logf,
		SysProcAttr: sysProcAttr(),
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start: %w", err)
	}
	pid := cmd.Process.Pid
	st, err := readStat(pid) // the child is not reaped yet, so its pid is still its own
	if err != nil {
		signalGroup(pid, syscall.SIGKILL)
		cmd.Wait()
		return nil, nil, fmt.Errorf("read start time: %w", err)
	}
	return cmd, &record{
		Version:   recordVersion,
		ID:        id,
		Labels:    spec.Labels,
		Command:   append([]string{exe}, command[1:]...),
		PID:       pid,
		StartTime: st.startTime,
		BootID:    t.bootID,
		Host:      t.host,
		Ports:     ports,
		StopGrace: duration(spec.Service.StopGrace),
	}, nil
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
	for k, v := range svc.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: invalid env variable %q", targets.ErrInvalidSpec, k)
		}
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

// resolveExecutable returns the absolute path of the executable name: a
// name with a slash is a path (relative to molt's working directory), any
// other is looked up in molt's PATH.
func resolveExecutable(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("resolve executable: %w", err)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("resolve executable: %w", err)
	}
	return abs, nil
}

// checkDigest compares the SHA-256 of file with the hex digest want.
func checkDigest(file, want string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("hash executable: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hash executable: %w", err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if !strings.EqualFold(got, want) {
		return fmt.Errorf("%w: executable %s has sha256 %s, the spec expects %s",
			targets.ErrInvalidSpec, file, got, strings.ToLower(want))
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
