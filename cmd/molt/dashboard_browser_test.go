package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/molt-dev/molt/sources/git/gittest"
	"github.com/molt-dev/molt/targets/targetstest"
)

// findChromium returns the path of a Chromium or Chrome, or skips the
// test (fails it when MOLT_REQUIRE_CHROMIUM=1).
func findChromium(t *testing.T) string {
	t.Helper()
	names := []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("no Chromium found on PATH (looked for %s): install Debian's chromium", strings.Join(names, ", "))
	if os.Getenv("MOLT_REQUIRE_CHROMIUM") == "1" {
		t.Fatal(msg + " (MOLT_REQUIRE_CHROMIUM=1)")
	}
	t.Skip(msg + "; MOLT_REQUIRE_CHROMIUM=1 makes this a failure")
	return ""
}

// artifactDir is where a test leaves files to look at afterwards:
// MOLT_TEST_ARTIFACTS when set, else a directory removed with the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MOLT_TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rollingSource is the demo fleet as a rolling rollout of four replicas,
// one at a time, each new instance healthy for 1.5s before an old one
// goes: slow enough to watch.
func (f *fleetRepo) rollingSource(version string) string {
	return fmt.Sprintf(`services: web: {
	replicas: 4
	process: command: [%q]
	env: VERSION: %q
	ports: http: 0
	expose: {listen: "127.0.0.1:%s", port: "http"}
	health: {interval: "100ms", grace: "1s"}
	rollout: {strategy: "rolling", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "1500ms", progressDeadline: "60s"}
}
`, f.hello, version, f.port)
}

// dashboardState is what the browser test reads from the page.
type dashboardState struct {
	Marker      string   `json:"marker"`      // set before the push: gone after a reload
	Progress    *float64 `json:"progress"`    // the rollout's progress bar, nil when none
	Max         float64  `json:"max"`         // its maximum
	Generations []string `json:"generations"` // the generations shown for web
	Live        string   `json:"live"`        // the connection indicator
}

const readDashboard = `(() => {
	const p = document.querySelector('progress.rollout-progress[data-service="web"]');
	return {
		marker: window.__moltMarker || "",
		progress: p ? p.value : null,
		max: p ? p.max : 0,
		generations: Array.from(document.querySelectorAll('[data-service="web"] [data-generation]')).map(e => e.dataset.generation),
		live: document.getElementById("live").textContent,
	};
})()`

// TestDashboardBrowser loads the dashboard of a real molt serve in
// headless Chromium, pushes a commit that starts a rolling rollout, and
// sees, without a reload, the progress bar move and the new generation
// appear; then the page on a phone's screen. Screenshots go to
// MOLT_TEST_ARTIFACTS (or a temporary directory).
func TestDashboardBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	chromium := findChromium(t)
	artifacts := artifactDir(t)

	repo := newFleetRepo(t)
	repo.WriteFile("fleet.cue", repo.rollingSource("v1"))
	repo.Commit("v1 rolling")
	repo.Push()
	gitSrv := gittest.ServeHTTP(t, repo.Root)
	s := startServe(t, gitSrv.RepoURL("fleet.git"), stateDir(t), "@every 1s")
	answers(t, repo.App, "hello from v1", 60*time.Second)
	targetstest.Eventually(t, 60*time.Second, "the fleet converged on v1", func() bool {
		st, ok := serveStatus(s)
		if !ok || len(st.Fleets) != 1 || len(st.Fleets[0].Services) != 1 {
			return false
		}
		web := st.Fleets[0].Services[0]
		return web.Rollout == nil && web.Healthy == 4
	})

	// The browser: headless, no sandbox (CI runs as root), its own profile.
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// The first Run starts the browser, which lives as long as the
	// context of that call: it is bounded here by a timer, not by bctx.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(bctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start Chromium (%s): %v", chromium, err)
		}
	case <-time.After(time.Minute):
		cancelBrowser()
		t.Fatalf("Chromium (%s) did not start within a minute", chromium)
	}
	// Whatever the page throws or logs as an error fails the test.
	consoleCtx, stopConsole := context.WithCancel(bctx)
	defer stopConsole()
	pageErrors := make(chan string, 100)
	go func() {
		defer close(pageErrors)
		for m, err := range chromedp.Console(consoleCtx) {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				select {
				case pageErrors <- m.String():
				default:
				}
			}
		}
	}()

	url := "http://" + s.listen + "/"
	read := func() dashboardState {
		t.Helper()
		var st dashboardState
		err := within(bctx, 10*time.Second, func(ctx context.Context) error {
			var err error
			st, err = chromedp.Run(ctx, chromedp.Evaluate[dashboardState](readDashboard))
			return err
		})
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		return st
	}
	screenshot := func(name string) {
		t.Helper()
		var png []byte
		err := within(bctx, 20*time.Second, func(ctx context.Context) error {
			var err error
			png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
			return err
		})
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		path := filepath.Join(artifacts, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
	// poll reads the page every 100ms until done says so, within d.
	poll := func(what string, d time.Duration, done func(dashboardState) bool) dashboardState {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			st := read()
			if done(st) {
				return st
			}
			if time.Now().After(deadline) {
				screenshot("dashboard-timeout.png")
				t.Fatalf("the page did not show %s within %s; last: %+v", what, d, st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	if err := within(bctx, 30*time.Second, func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`[data-service="web"]`)))
	}); err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
	if err := within(bctx, 10*time.Second, func(ctx context.Context) error {
		_, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.__moltMarker = "no reload"`))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	before := poll("the stream connected", 20*time.Second, func(st dashboardState) bool { return st.Live == "live" })
	if before.Progress != nil || len(before.Generations) != 1 {
		t.Fatalf("before the push the page shows %+v; want one generation and no rollout", before)
	}
	old := before.Generations[0]

	repo.WriteFile("fleet.cue", repo.rollingSource("v2"))
	repo.Commit("v2")
	repo.Push()

	// Watch the rollout: every distinct value of the progress bar, and a
	// generation other than the old one.
	var values []float64
	shot := false
	after := poll("the progress bar move and the new generation appear", 90*time.Second, func(st dashboardState) bool {
		if st.Marker != "no reload" {
			t.Fatalf("the page was reloaded: %+v", st)
		}
		if st.Progress != nil {
			if !slices.Contains(values, *st.Progress) {
				values = append(values, *st.Progress)
				t.Logf("progress %v of %v, generations %v", *st.Progress, st.Max, st.Generations)
			}
			if !shot && *st.Progress >= 1 && len(st.Generations) == 2 {
				screenshot("dashboard-rollout.png")
				shot = true
			}
		}
		return len(values) >= 2 && slices.ContainsFunc(st.Generations, func(g string) bool { return g != old })
	})
	if !shot {
		screenshot("dashboard-rollout.png")
	}
	t.Logf("progress values seen: %v; generations: %v", values, after.Generations)

	// The rollout ends on the page too: one generation, the new one.
	answers(t, repo.App, "hello from v2", 60*time.Second)
	done := poll("the rollout's end", 60*time.Second, func(st dashboardState) bool {
		return st.Progress == nil && len(st.Generations) == 1 && st.Generations[0] != old
	})
	if done.Marker != "no reload" {
		t.Fatal("the page was reloaded")
	}

	// On a phone's screen the page fits its width.
	var overflow bool
	if err := within(bctx, 20*time.Second, func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2))); err != nil {
			return err
		}
		var err error
		overflow, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	screenshot("dashboard-phone.png")
	if overflow {
		t.Error("on a 390px wide screen the page is wider than the screen")
	}

	stopConsole()
	for m := range pageErrors {
		t.Errorf("the page logged: %s", m)
	}
}

// within runs f with a context derived from the browser's, bounded by d.
func within(bctx context.Context, d time.Duration, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(bctx, d)
	defer cancel()
	return f(ctx)
}

// serveStatus reads GET /api/v1/status.
func serveStatus(s *served) (apiStatus, bool) {
	var st apiStatus
	resp, err := http.Get("http://" + s.listen + "/api/v1/status")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	return st, resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&st) == nil
}
