package reconciler

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// Secrets reads the values of services' secretEnv on the host molt runs
// on, and digests them for the spec hash.
//
// A value lives only in memory, between the read and the instance's
// environment: it is never written, logged or printed. What the spec hash
// (and so the plan, the instances' labels and the revision record) gets of
// it is an HMAC-SHA256 of its name and value under a random key kept in
// the state directory (secret-key, mode 0600): without that key, a hash
// does not let anyone confirm a guessed secret. The key is made on first
// use; a new key (the state directory deleted, or the file) gives every
// service with secrets a new generation once, rolled out like any change.
type Secrets struct {
	dir string
	log *slog.Logger
	// LookupEnv reads molt's environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)

	mu  sync.Mutex
	key []byte
}

// NewSecrets returns the secrets reader whose key is dir/secret-key; log
// (nil discards) hears about a key file moved aside.
func NewSecrets(dir string, log *slog.Logger) *Secrets {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Secrets{dir: dir, log: log}
}

const (
	secretKeyFile = "secret-key"
	// maxSecretBytes bounds a secret file (an environment variable of
	// more cannot be passed to a process anyway).
	maxSecretBytes = 64 << 10
	// resolvedSecret prefixes the name of a secret in Desired.Resolved,
	// where its digest is kept (see Secrets.Resolve).
	resolvedSecret = "secret:"
	secretDigestV  = "molt/secret/v1"
)

// errSecretsChanged: a secret read again when an instance is provisioned
// is not what the plan was made with (rotated in between), or cannot be
// read any more. The provision is refused and the spec resolved again:
// the next pass plans the new generation. Transient, never a failed
// rollout.
var errSecretsChanged = errors.New("secrets changed since the plan")

// Resolve reads every secret of svc and returns its digest under
// "secret:NAME", for the spec hash (nil when svc has no secretEnv). A
// secret that cannot be read is an error wrapping targets.ErrInvalidSpec
// that names every such secret and where molt looked, never a value; a key
// that cannot be had is a plain (transient) error.
func (s *Secrets) Resolve(svc *schema.Service) (map[string]string, error) {
	if len(svc.SecretEnv) == 0 {
		return nil, nil
	}
	values, err := s.Read(svc)
	if err != nil {
		return nil, err
	}
	return s.digests(values)
}

// Read reads the value of every secret of svc, as Resolve describes.
func (s *Secrets) Read(svc *schema.Service) (targets.SecretValues, error) {
	if len(svc.SecretEnv) == 0 {
		return nil, nil
	}
	values := targets.SecretValues{}
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(svc.SecretEnv)) {
		ref := svc.SecretEnv[name]
		v, err := s.read(ref)
		if err != nil {
			problems = append(problems, fmt.Sprintf("secret %s: %v", name, err))
			continue
		}
		values[name] = v
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", targets.ErrInvalidSpec, strings.Join(problems, "; "))
	}
	return values, nil
}

// Values reads the secrets of svc again for a provision and checks them
// against the digests the plan resolved (resolved is Desired.Resolved): a
// secret that changed since, or that cannot be read any more, is an error
// wrapping errSecretsChanged.
func (s *Secrets) Values(svc *schema.Service, resolved map[string]string) (targets.SecretValues, error) {
	if len(svc.SecretEnv) == 0 {
		return nil, nil
	}
	values, err := s.Read(svc)
	if err != nil {
		// Not an invalid spec here (%v, not %w): the file may be in the
		// middle of being replaced, and the next plan says whether it is.
		return nil, fmt.Errorf("%w: %v", errSecretsChanged, err)
	}
	if changed, err := s.changed(values, resolved); err != nil {
		return nil, err
	} else if len(changed) > 0 {
		return nil, fmt.Errorf("%w: %s (planning again)", errSecretsChanged, changedText(changed))
	}
	return values, nil
}

// Stale says why no instance of d can be made again ("" when one can):
// a secret of its spec that changed since the digests in d.Resolved were
// taken (rotated: the old value is gone), or that cannot be read. A spec
// without secrets is never stale, and costs no read.
func (s *Secrets) Stale(d Desired) string {
	if d.Spec == nil || len(d.Spec.SecretEnv) == 0 {
		return ""
	}
	values, err := s.Read(d.Spec)
	if err != nil {
		return err.Error()
	}
	changed, err := s.changed(values, d.Resolved)
	if err != nil {
		return err.Error()
	}
	if len(changed) > 0 {
		return fmt.Sprintf("%s since generation %s was made", changedText(changed), short(d.Hash))
	}
	return ""
}

// changed returns the names of the secrets whose digest differs from the
// one in resolved.
func (s *Secrets) changed(values targets.SecretValues, resolved map[string]string) ([]string, error) {
	digests, err := s.digests(values)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(values)) {
		k := resolvedSecret + name
		if !hmac.Equal([]byte(digests[k]), []byte(resolved[k])) {
			out = append(out, name)
		}
	}
	return out, nil
}

func changedText(names []string) string {
	if len(names) == 1 {
		return "secret " + names[0] + " changed"
	}
	return "secrets " + strings.Join(names, ", ") + " changed"
}

// digests keys the digest of each value.
func (s *Secrets) digests(values targets.SecretValues) (map[string]string, error) {
	key, err := s.keyOf()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(values))
	for name, v := range values {
		m := hmac.New(sha256.New, key)
		io.WriteString(m, secretDigestV+"\x00"+name+"\x00"+v)
		out[resolvedSecret+name] = hex.EncodeToString(m.Sum(nil))[:32]
	}
	return out, nil
}

// read reads one secret. Errors say where molt looked and what it found,
// never a value.
func (s *Secrets) read(ref schema.Secret) (string, error) {
	if ref.File == "" {
		look := s.LookupEnv
		if look == nil {
			look = os.LookupEnv
		}
		v, ok := look(ref.Env)
		switch {
		case ref.Env == "":
			return "", errors.New("neither file nor env is set")
		case !ok:
			return "", fmt.Errorf("environment variable %s is not set in molt's environment", ref.Env)
		case strings.ContainsRune(v, 0):
			return "", fmt.Errorf("environment variable %s holds a NUL byte", ref.Env)
		}
		return v, nil
	}
	v, err := s.readFile(ref.File)
	if err != nil {
		return "", fmt.Errorf("file %s: %w", ref.File, err)
	}
	return v, nil
}

// readFile reads a secret file: a regular file (a FIFO or a device is
// refused rather than waited on) of at most maxSecretBytes, outside the
// state directory, with one trailing newline ("\n" or "\r\n") trimmed.
func (s *Secrets) readFile(path string) (string, error) {
	if s.inStateDir(path) {
		return "", errors.New("is inside molt's state directory, whose files are molt's own")
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", pathless(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", pathless(err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file but %s", kindOf(st.Mode()))
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
	if err != nil {
		return "", pathless(err)
	}
	if len(b) > maxSecretBytes {
		return "", fmt.Errorf("larger than %d KiB", maxSecretBytes>>10)
	}
	v := string(b)
	if t, ok := strings.CutSuffix(v, "\n"); ok {
		v = strings.TrimSuffix(t, "\r")
	}
	if strings.ContainsRune(v, 0) {
		return "", errors.New("holds a NUL byte, which an environment variable cannot")
	}
	return v, nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "of mode " + m.Type().String()
}

// inStateDir reports whether path (symbolic links followed) lies in the
// state directory.
func (s *Secrets) inStateDir(path string) bool {
	dir, err := filepath.EvalSymlinks(s.dir)
	if err != nil {
		return false
	}
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	p, err = filepath.Abs(p)
	if err != nil {
		return false
	}
	dir, _ = filepath.Abs(dir)
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// pathless drops the path of an *fs.PathError, which the caller names.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// keyOf returns the digest key, reading dir/secret-key or making it. Two
// molts that make it at once agree on one (the file is linked into place,
// never replaced); a file that is not a key is moved aside, with a
// warning, and a new key made.
func (s *Secrets) keyOf() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	path := filepath.Join(s.dir, secretKeyFile)
	for range 3 {
		b, err := os.ReadFile(path)
		if err == nil {
			if k, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(k) == 32 {
				s.key = k
				return k, nil
			}
			aside := fmt.Sprintf("%s.unreadable-%d", path, time.Now().Unix())
			if err := os.Rename(path, aside); err != nil {
				return nil, fmt.Errorf("move unreadable secret key aside: %w", err)
			}
			s.log.Warn("secret key unreadable: moved aside, making a new one (services with secrets get a new generation)", "path", path, "moved-to", aside)
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read secret key: %w", err)
		}
		if err := makeKey(path); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	return nil, errors.New("secret key: cannot make one that stays")
}

// makeKey writes a new random key at path unless a file is there already
// (an error matching fs.ErrExist).
func makeKey(path string) error {
	k := make([]byte, 32)
	rand.Read(k)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("make secret key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+secretKeyFile+"-*")
	if err != nil {
		return fmt.Errorf("make secret key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(k) + "\n")
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("make secret key: %w", err)
	}
	return err
}

// targetResolved is what of resolved the target gets: its own entries,
// without the secrets' digests (nil when nothing is left of a map that
// had some).
func targetResolved(resolved map[string]string) map[string]string {
	out := withoutSecrets(resolved)
	if len(out) == len(resolved) {
		return resolved
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
