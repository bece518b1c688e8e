package targets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/molt-dev/molt/schema"
)

// Secret values never show, however they are printed, logged or encoded.
func TestSecretValuesShowNames(t *testing.T) {
	v := SecretValues{"DB_PASSWORD": "hunter2", "API_KEY": "k-hunter2"}
	spec := Spec{SecretEnv: v}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("x", "secrets", v, "spec", spec)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "secrets", v)
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Join([]string{fmt.Sprint(v), fmt.Sprintf("%v %+v %#v %s %q", v, spec, spec, v, v), logs.String(), string(js)}, "\n")
	if strings.Contains(out, "hunter2") {
		t.Errorf("a value shows:\n%s", out)
	}
	if got := v.String(); got != "secrets [API_KEY DB_PASSWORD]" {
		t.Errorf("String = %q", got)
	}
}

func TestServiceEnvAndCheckEnv(t *testing.T) {
	svc := &schema.Service{
		Env:       map[string]string{"VERSION": "v1"},
		SecretEnv: map[string]schema.Secret{"DB_PASSWORD": {File: "/run/secrets/db"}},
	}
	ok := Spec{Service: svc, SecretEnv: SecretValues{"DB_PASSWORD": "pw"}}
	if diff := cmp.Diff(map[string]string{"VERSION": "v1", "DB_PASSWORD": "pw"}, ServiceEnv(ok)); diff != "" {
		t.Errorf("ServiceEnv (-want +got):\n%s", diff)
	}
	if err := CheckEnv(ok); err != nil {
		t.Errorf("CheckEnv = %v", err)
	}
	for name, spec := range map[string]Spec{
		"no value":         {Service: svc},
		"NUL in a value":   {Service: svc, SecretEnv: SecretValues{"DB_PASSWORD": "p\x00w"}},
		"undeclared value": {Service: svc, SecretEnv: SecretValues{"DB_PASSWORD": "pw", "OTHER": "x"}},
		"bad env name":     {Service: &schema.Service{Env: map[string]string{"A=B": "x"}}},
	} {
		err := CheckEnv(spec)
		if !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: CheckEnv = %v, want ErrInvalidSpec", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "p\x00w") {
			t.Errorf("%s: the error holds the value: %v", name, err)
		}
	}
}
