//go:build linux

package process

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// A recorded pid that now belongs to another process is listed dead and is
// never signalled.
func TestPIDReuse(t *testing.T) {
	tests := []struct {
		name   string
		change func(rec *record)
		detail string
	}{
		{"start time differs", func(rec *record) { rec.StartTime++ }, "reused"},
		{"boot id differs", func(rec *record) { rec.BootID = "another-boot" }, "rebooted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tgt := newTarget(t, t.TempDir())
			sleep := startSleep(t)
			pid := sleep.Process.Pid
			st, err := readStat(pid)
			if err != nil {
				t.Fatal(err)
			}
			rec := &record{
				Version: recordVersion, ID: "hello-0123abcd-000001", Labels: labels("hello"),
				Command: []string{"/bin/sleep", "60"}, PID: pid, StartTime: st.startTime,
				BootID: tgt.bootID, Host: "127.0.0.1", StopGrace: duration(0),
			}
			tc.change(rec)
			dir := filepath.Join(tgt.dir, rec.ID)
			if err := os.MkdirAll(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := writeRecord(dir, rec); err != nil {
				t.Fatal(err)
			}

			insts, err := tgt.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(insts) != 1 || insts[0].State != targets.Dead || !strings.Contains(insts[0].Detail, tc.detail) {
				t.Fatalf("List = %+v, want one dead instance whose detail mentions %q", insts, tc.detail)
			}
			if err := tgt.Retire(t.Context(), rec.ID); err != nil {
				t.Fatalf("Retire: %v", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("instance directory still there after Retire: %v", err)
			}
			if !alive(pid) {
				t.Fatalf("Retire signalled pid %d, which is not the instance's", pid)
			}
		})
	}
}

// A process that ignores SIGTERM is killed, with everything in its process
// group, once its stop grace has passed.
func TestRetireKillsAfterGrace(t *testing.T) {
	tests := []struct {
		name   string
		script string
	}{
		{
			name:   "ignores TERM",
			script: `trap "" TERM; echo ready > "$READY"; sleep 60`,
		},
		{
			name:   "leader exits, its child ignores TERM",
			script: `sh -c 'trap "" TERM; echo ready > "$READY"; sleep 60' & wait`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tgt := newTarget(t, t.TempDir())
			scratch := t.TempDir()
			ready := filepath.Join(scratch, "ready")
			svc := &schema.Service{
				Name:      "stubborn",
				Process:   &schema.Process{Command: []string{"sh", "-c", tc.script}},
				Env:       map[string]string{"READY": ready},
				StopGrace: 300 * time.Millisecond,
			}
			inst := provision(t, tgt, svc)
			rec := mustRecord(t, tgt, inst.ID)
			eventually(t, "the script to set its trap", func() bool {
				_, err := os.Stat(ready)
				return err == nil
			})

			if err := tgt.Retire(t.Context(), inst.ID); err != nil {
				t.Fatalf("Retire: %v", err)
			}
			if alive(rec.PID) || groupAlive(rec.PID) {
				t.Errorf("process group %d still alive after Retire", rec.PID)
			}
		})
	}
}

// A stopped instance (SIGSTOP: hung, as a health check sees it) is
// continued after its SIGTERM, so that it ends gracefully within its
// stop grace rather than being killed once the grace has passed.
func TestRetireContinuesAStoppedInstance(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	svc := helloService(nil)
	svc.StopGrace = time.Minute
	inst := provision(t, tgt, svc)
	waitGet(t, inst.Endpoints["http"], "/healthz")
	rec := mustRecord(t, tgt, inst.ID)
	if err := syscall.Kill(rec.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the instance to stop", func() bool {
		st, err := readStat(rec.PID)
		return err == nil && st.state == 'T'
	})
	var logs bytes.Buffer
	tgt.log = slog.New(slog.NewTextHandler(&logs, nil))
	if err := tgt.Retire(t.Context(), inst.ID); err != nil {
		t.Fatalf("Retire: %v", err)
	}
	if alive(rec.PID) {
		t.Fatalf("process %d still alive after Retire", rec.PID)
	}
	if !strings.Contains(logs.String(), "stop=terminated") {
		t.Errorf("the retire did not end it with SIGTERM: %s", logs.String())
	}
}

// On SIGTERM the hello app finishes the request in flight, and Retire waits
// for it.
func TestRetireDrains(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	inst := provision(t, tgt, helloService(nil))
	ep := inst.Endpoints["http"]
	waitGet(t, ep, "/healthz")

	resp, err := http.Get("http://" + ep + "/slow?ms=2000") // returns with the headers
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	retired := make(chan error, 1)
	go func() { retired <- tgt.Retire(context.Background(), inst.ID) }()

	// Read the log until the app says it is shutting down: the request is
	// then still in flight.
	eventually(t, "the app to start shutting down", func() bool {
		b, _ := os.ReadFile(tgt.LogPath(inst.ID))
		return strings.Contains(string(b), "shutting down")
	})
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "slow done\n" {
		t.Errorf("in-flight request got %q, %v; want it finished", body, err)
	}
	if err := <-retired; err != nil {
		t.Fatalf("Retire: %v", err)
	}
}

// Closing (or dropping) a Target leaves its instances running; a new
// Target finds them.
func TestInstanceOutlivesTarget(t *testing.T) {
	state := t.TempDir()
	tgt := newTarget(t, state)
	inst, err := tgt.Provision(t.Context(), targets.Spec{Labels: labels("hello"), Service: helloService(map[string]string{"VERSION": "outlives"})})
	if err != nil {
		t.Fatal(err)
	}
	if err := tgt.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.Provision(t.Context(), targets.Spec{Labels: labels("hello"), Service: helloService(nil)}); !errors.Is(err, errClosed) {
		t.Errorf("Provision after Close = %v, want errClosed", err)
	}
	if got := waitGet(t, inst.Endpoints["http"], "/"); got != "hello from outlives\n" {
		t.Errorf("GET / = %q after Close", got)
	}

	again := newTarget(t, state)
	insts, err := again.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 1 || insts[0].ID != inst.ID || insts[0].State != targets.Running {
		t.Fatalf("new target lists %+v, want %s running", insts, inst.ID)
	}
	if err := again.Retire(t.Context(), inst.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := httpGet(inst.Endpoints["http"], "/"); ok {
		t.Error("instance still answers after Retire")
	}
}

// A child that exits is reaped at once (no zombie) and its exit status
// shows in the instance's detail.
func TestReapsExitedChild(t *testing.T) {
	tgt := newTarget(t, t.TempDir())
	inst := provision(t, tgt, helloService(map[string]string{"EXIT_AFTER": "50ms"}))
	rec := mustRecord(t, tgt, inst.ID)
	eventually(t, "the child to be reaped", func() bool {
		_, err := readStat(rec.PID)
		return errors.Is(err, os.ErrNotExist)
	})
	insts, err := tgt.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 1 || insts[0].State != targets.Dead || insts[0].Detail != "exited: exit status 1" {
		t.Fatalf("List = %+v, want dead with detail %q", insts, "exited: exit status 1")
	}
	if !logHas(t, tgt.LogPath(inst.ID), "EXIT_AFTER") {
		t.Error("the instance log lacks the app's last words")
	}
}

func logHas(t *testing.T, path, s string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return true
		}
	}
	return false
}
