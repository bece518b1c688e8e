package process

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

var _ targets.Resolver = (*Target)(nil)

// ResolvedSHA256 is the key of the executable's digest (64 lower-case hex
// digits) in what Resolve returns and in targets.Spec.Resolved.
const ResolvedSHA256 = "sha256"

// Resolve returns {"sha256": "<hex>"}: the SHA-256 of the executable that
// the service's command[0] names now (a name with a slash is a path,
// relative to molt's working directory; any other is looked up in molt's
// PATH). The reconciler mixes it into the spec hash, so a binary rebuilt
// at the same path is a new generation.
//
// When the service pins Process.SHA256 and the artifact store already
// holds that digest, Resolve returns it without looking at the path: the
// store's copy is the artifact. Otherwise the file must have the pinned
// digest.
//
// Digests are cached by path, size, modification time, inode and change
// time, so resolving a large unchanged executable costs a stat; a changed
// file is hashed again. Resolve has no other side effect and does not
// wait: ctx is not consulted.
//
// A service that is not a process service, an empty command, a malformed
// pin, an executable that cannot be found or read, or one whose digest
// differs from the pin is an error wrapping targets.ErrInvalidSpec.
func (t *Target) Resolve(ctx context.Context, svc *schema.Service) (map[string]string, error) {
	digest, err := t.resolve(svc, true)
	if err != nil {
		return nil, err
	}
	return map[string]string{ResolvedSHA256: digest}, nil
}

// resolve returns the digest of the artifact svc runs, as Resolve
// describes. When missingInvalid is false, an executable that cannot be
// found or read is a plain error rather than an invalid spec: so it is
// at provision time, where the file may merely be in the middle of being
// replaced.
func (t *Target) resolve(svc *schema.Service, missingInvalid bool) (string, error) {
	if svc == nil || svc.Process == nil {
		return "", fmt.Errorf("%w: not a process service", targets.ErrInvalidSpec)
	}
	cmd := svc.Process.Command
	if len(cmd) == 0 || cmd[0] == "" {
		return "", fmt.Errorf("%w: empty command", targets.ErrInvalidSpec)
	}
	pin, err := pinOf(svc)
	if err != nil {
		return "", err
	}
	if pin != "" && t.stored(pin) {
		return pin, nil
	}
	unreadable := func(err error) error {
		if missingInvalid {
			return fmt.Errorf("%w: %w", targets.ErrInvalidSpec, err)
		}
		return err
	}
	exe, err := resolveExecutable(cmd[0])
	if err != nil {
		return "", unreadable(err)
	}
	got, err := t.digestOf(exe)
	if err != nil {
		return "", unreadable(fmt.Errorf("hash executable %s: %w", exe, err))
	}
	if pin != "" && got != pin {
		return "", fmt.Errorf("%w: executable %s has sha256 %s, the spec pins %s",
			targets.ErrInvalidSpec, exe, got, pin)
	}
	return got, nil
}

// pinOf returns the digest the service pins, in lower case, or "".
func pinOf(svc *schema.Service) (string, error) {
	pin := strings.ToLower(svc.Process.SHA256)
	if pin != "" && !validDigest(pin) {
		return "", fmt.Errorf("%w: sha256 %q is not 64 hex digits", targets.ErrInvalidSpec, svc.Process.SHA256)
	}
	return pin, nil
}

// resolveExecutable returns the absolute path of the executable name: a
// name with a slash is a path (relative to molt's working directory), any
// other is looked up in molt's PATH. The error names the executable.
func resolveExecutable(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("resolve executable: %w", err)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("resolve executable %s: %w", name, err)
	}
	return abs, nil
}
