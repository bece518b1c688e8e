//go:build linux

package process

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
	"github.com/molt-dev/molt/targets/targetstest"
)

// A secret is in the process's environment and in no file of the
// target's directory (instance record, log, artifact store) nor in the
// target's own log; molt's own variables still win over it.
func TestSecretEnvOnlyInTheProcess(t *testing.T) {
	state := t.TempDir()
	var logs bytes.Buffer
	tgt, err := New(Options{
		Dir:    filepath.Join(state, "instances"),
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tgt.Close() })
	const secret = "hunter2-process-secret"
	svc := helloService(map[string]string{"VERSION": "v1"})
	svc.SecretEnv = map[string]schema.Secret{"DB_PASSWORD": {Env: "DB_PASSWORD"}, "MOLT_SERVICE": {Env: "X"}}
	inst, err := tgt.Provision(t.Context(), targets.Spec{Labels: labels(svc.Name), Service: svc,
		SecretEnv: targets.SecretValues{"DB_PASSWORD": secret, "MOLT_SERVICE": "not molt's"}})
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() { tgt.Retire(context.Background(), inst.ID) })
	var got string
	targetstest.Eventually(t, 10*time.Second, "the instance to answer", func() bool {
		var ok bool
		got, ok = httpGet(inst.Endpoints["http"], "/env?name=DB_PASSWORD")
		return ok
	})
	if got != secret {
		t.Errorf("the process sees DB_PASSWORD=%q, want the secret", got)
	}
	if got, _ := httpGet(inst.Endpoints["http"], "/env?name=MOLT_SERVICE"); got != "hello" {
		t.Errorf("MOLT_SERVICE=%q: a secret won over molt's own variable", got)
	}
	environ, err := os.ReadFile("/proc/" + strings.TrimPrefix(inst.Detail, "pid ") + "/environ")
	if err != nil || !bytes.Contains(environ, []byte("DB_PASSWORD="+secret+"\x00")) {
		t.Errorf("the process environment lacks the secret (%v)", err)
	}
	if _, err := tgt.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(state, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the secret", path)
		}
		return nil
	})
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the target's log holds the secret:\n%s", logs.String())
	}
}
