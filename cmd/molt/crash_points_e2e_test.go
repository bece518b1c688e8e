package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/molt-dev/molt/sources/github/githubtest"
	"github.com/molt-dev/molt/targets/crash"
	"github.com/molt-dev/molt/targets/targetstest"
)

// crashStrategy is one rollout strategy of the crash tests: its rollout
// block and what it allows of a service of crashReplicas instances.
type crashStrategy struct {
	name    string
	rollout string
	// bound is the most instances that may live at once (half-made ones
	// included); floor the fewest healthy ones once the first generation
	// serves.
	bound, floor int
}

const crashReplicas = 2

var crashStrategies = []crashStrategy{
	{"rolling", `{strategy: "rolling", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "150ms", progressDeadline: "30s"}`,
		crashReplicas + 1, crashReplicas},
	{"blue-green", `{strategy: "blue-green", minHealthyFor: "150ms", progressDeadline: "30s", keepPrevious: "0s"}`,
		2 * crashReplicas, crashReplicas},
	{"canary", `{strategy: "canary", maxSurge: 1, maxUnavailable: 0, minHealthyFor: "150ms", progressDeadline: "30s",
		canary: {count: 1, weight: 50, duration: "300ms", minRequests: 5, maxLatencyRatio: 1000, then: "rolling"}}`,
		crashReplicas + 1, crashReplicas},
}

// crashFleet is a fleet of one service under serve, with everything the
// crash tests watch: the load through the router, the sampler of the live
// instances, and the in-process GitHub that serve reports to.
type crashFleet struct {
	*coreFleet
	st        crashStrategy
	gh        *githubtest.Server
	tokenFile string
	load      *targetstest.Load
	sampler   *instanceSampler
}

func newCrashFleet(t *testing.T, st crashStrategy) *crashFleet {
	f := &crashFleet{coreFleet: newCoreFleet(t), st: st}
	f.gh = githubtest.Start(t, githubtest.Options{Owner: "acme", Repo: "fleet", Token: "ghs_crash"})
	f.tokenFile = filepath.Join(f.work, "gh-token")
	if err := os.WriteFile(f.tokenFile, []byte("ghs_crash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// source is the fleet at version; a broken one never turns healthy.
func (f *crashFleet) source(version string, broken bool) string {
	extra := ""
	if broken {
		extra = `, FAIL_HEALTH: "1"`
	}
	return fmt.Sprintf(`name: "crash"
services: web: {
	replicas: %d
	process: command: [%q]
	env: {VERSION: %q%s}
	ports: http: 0
	expose: {listen: %q, port: "http"}
	health: {interval: "50ms", grace: "2s", unhealthyThreshold: 2}
	stopGrace: "2s"
	rollout: %s
}
`, crashReplicas, f.hello, version, extra, f.addr(), f.st.rollout)
}

// crashServe is one run of molt serve that may die at a crash point.
type crashServe struct {
	cmd    *exec.Cmd
	logs   *syncBuffer
	listen string
	done   chan struct{} // closed once serve has exited
	err    error         // how it exited, once done is closed
}

// serve starts molt serve on the fleet with the extra environment.
func (f *crashFleet) serve(env ...string) *crashServe {
	f.t.Helper()
	return f.serveWith(env)
}

// serveWith starts molt serve, reporting to the in-process GitHub when
// the fleet has one, and returns without waiting for it to answer.
func (f *crashFleet) serveWith(env []string) *crashServe {
	f.t.Helper()
	port, err := freePort()
	if err != nil {
		f.t.Fatal(err)
	}
	s := &crashServe{logs: &syncBuffer{}, listen: "127.0.0.1:" + port, done: make(chan struct{})}
	args := []string{"serve", "--repo", f.repo, "--branch", "main", "--state-dir", f.state,
		"--listen", s.listen, "--poll", "@every 1s", "--log-level", "debug", "--log-format", "text"}
	if f.gh != nil {
		args = append(args, "--github-repo", "acme/fleet", "--github-api-url", f.gh.URL, "--github-token-file", f.tokenFile)
	}
	s.cmd = exec.Command("molt", args...)
	s.cmd.Env = append(append(os.Environ(), "MOLT_WEBHOOK_SECRET=s3cret"), env...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	f.t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(30 * time.Second):
				s.cmd.Process.Kill()
			}
			if f.t.Failed() {
				f.t.Logf("molt serve (%s) output:\n%s", strings.Join(env, " "), s.logs.String())
			}
		}
	})
	return s
}

// stop ends serve with SIGTERM (bounded).
func (s *crashServe) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, into the log
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
		t.Errorf("molt serve did not stop on SIGTERM within 30s:\n%s", s.logs.String())
	}
}

// settled waits until serve's status says the fleet reached revision with
// one of the results, and returns the result.
func (s *crashServe) settled(t *testing.T, revision string, results ...string) string {
	t.Helper()
	var got, last string
	defer func() {
		if t.Failed() && got == "" {
			t.Logf("the last status of the fleet: %s", last)
		}
	}()
	targetstest.Eventually(t, 60*time.Second, revision+" settled as "+strings.Join(results, " or "), func() bool {
		select {
		case <-s.done:
			t.Fatalf("molt serve exited (%v) before it settled:\n%s", s.err, s.logs.String())
		default:
		}
		var st apiStatus
		if getJSONQuiet("http://"+s.listen+"/api/v1/status", &st) != http.StatusOK {
			return false
		}
		for _, fl := range st.Fleets {
			last = fmt.Sprintf("%s %s %s", fl.Revision, fl.LastResult, fl.LastError)
			for _, r := range results {
				if fl.Revision == revision && fl.LastResult == r {
					got = r
					return true
				}
			}
		}
		return false
	})
	return got
}

// head is the revision serve reports for the repository's HEAD.
func (f *crashFleet) head() string {
	return "main@sha1:" + strings.TrimSpace(gitOut(f.t, f.repo, "rev-parse", "HEAD"))
}

// crashRun is what one armed run of serve did.
type crashRun struct {
	point   string
	reached bool
}

// armed runs serve with point armed until it dies there, or until it has
// settled on revision without reaching it (then it is stopped).
func (f *crashFleet) armed(point, revision string, broken bool) crashRun {
	f.t.Helper()
	s := f.serve(crash.Env + "=" + point)
	marker := "molt: crash point " + point + " reached"
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			err := s.err
			if !strings.Contains(s.logs.String(), marker) {
				f.t.Fatalf("serve armed at %s exited (%v) without reaching it:\n%s", point, err, s.logs.String())
			}
			var ee *exec.ExitError
			if ok := asExit(err, &ee); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				f.t.Errorf("serve armed at %s ended with %v, want SIGKILL", point, err)
			}
			return crashRun{point: point, reached: true}
		case <-deadline:
			s.cmd.Process.Kill()
			<-s.done
			f.t.Fatalf("serve armed at %s neither crashed nor settled in 60s:\n%s", point, s.logs.String())
		case <-tick.C:
			var st apiStatus
			if getJSONQuiet("http://"+s.listen+"/api/v1/status", &st) != http.StatusOK {
				continue
			}
			for _, fl := range st.Fleets {
				if fl.Revision == revision && settledResult(fl.LastResult, broken) {
					s.stop(f.t)
					if strings.Contains(s.logs.String(), marker) {
						return crashRun{point: point, reached: true}
					}
					return crashRun{point: point}
				}
			}
		}
	}
}

// settledResult says whether a fleet result ends the rollout of a good
// (converged) or broken (rolled back) version.
func settledResult(r string, broken bool) bool {
	if broken {
		return r == "failed"
	}
	return r == "converged"
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*ee = e
	}
	return ok
}

// TestCrashAtEveryPoint arms every crash point of molt (targets/crash) in
// turn, under rolling, blue-green and canary, with requests flowing
// through the router all along: serve dies at the point (SIGKILL, as a
// machine would kill it), is started again, and must converge to the
// commit (or, for a broken commit, roll back to the last good one), while
// never more than the strategy's bound of instances live and never fewer
// than replicas − maxUnavailable are healthy; no request fails, and once
// the fleet is down no process of it is left.
func TestCrashAtEveryPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	type tally struct {
		reached, runs int
		requests      int64
		failed        int
		peak, low     int
		notReached    []string
	}
	var mu sync.Mutex
	results := map[string]*tally{}
	for _, st := range crashStrategies {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			f := newCrashFleet(t, st)
			f.commit("v1", f.source("v1", false))
			s := f.serve()
			s.settled(t, f.head(), "converged")
			s.stop(t)
			f.load = targetstest.StartLoad(f.addr(), 2, 10*time.Millisecond)
			f.sampler = startSampler(t, filepath.Join(f.state, "instances"))
			tl := &tally{}
			good := "v1"
			for i, point := range crash.Points {
				broken := strings.HasPrefix(point, "failure.")
				version := fmt.Sprintf("v%d", i+2)
				f.commit(version+" for "+point, f.source(version, broken))
				rev := f.head()
				began := time.Now()
				run := f.armed(point, rev, broken)
				t.Logf("%s: %s reached=%v in %v", st.name, point, run.reached, time.Since(began).Round(time.Millisecond))
				tl.runs++
				if run.reached {
					tl.reached++
				} else {
					tl.notReached = append(tl.notReached, point)
				}
				// Started again, unarmed: the rollout finishes.
				s := f.serve()
				if broken {
					// A restart that finds the failure recorded rolls back
					// without failing again: its reconcile is held on the
					// last good generation (which wantOnly checks).
					s.settled(t, rev, "failed", "held")
				} else {
					s.settled(t, rev, "converged")
					good = version
				}
				s.stop(t)
				f.wantOnly(good)
			}
			samples, peak, low := f.sampler.stop("web")
			n, first := f.load.Failures()
			tl.requests, tl.failed, tl.peak, tl.low = f.load.Total(), n, peak, low
			f.load.Finish(t)
			t.Logf("%s: %d points, %d reached; %d requests, %d failed; %d samples, at most %d live, at least %d healthy",
				st.name, tl.runs, tl.reached, tl.requests, n, samples, peak, low)
			if peak > st.bound {
				t.Errorf("%d instances lived at once; %s allows %d", peak, st.name, st.bound)
			}
			if low < st.floor {
				t.Errorf("only %d instances were healthy at one moment; the floor is %d (%s)", low, st.floor, f.sampler.lowAt("web"))
			}
			if n > 0 {
				t.Errorf("%d requests failed, first: %s", n, first)
			}
			if r := f.molt("down", "--yes"); r.code != 0 {
				t.Fatalf("molt down exited %d: %s%s", r.code, r.stdout, r.stderr)
			}
			if left := instanceProcesses(t, filepath.Join(f.state, "instances")); len(left) > 0 {
				t.Errorf("%d processes left after down: %v", len(left), left)
			}
			mu.Lock()
			results[st.name] = tl
			mu.Unlock()
		})
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		total, reached := 0, 0
		for _, st := range crashStrategies {
			tl := results[st.name]
			if tl == nil {
				continue
			}
			total += tl.runs
			reached += tl.reached
			fmt.Fprintf(os.Stderr, "crash points, %s: %d of %d reached and survived; %d requests, %d failed; at most %d live (bound %d), at least %d healthy (floor %d); not reached: %v\n",
				st.name, tl.reached, tl.runs, tl.requests, tl.failed, tl.peak, st.bound, tl.low, st.floor, tl.notReached)
		}
		fmt.Fprintf(os.Stderr, "crash points: %d points × %d strategies, %d crashes survived\n", len(crash.Points), len(crashStrategies), reached)
	})
}

// wantOnly checks that the fleet runs replicas instances of version and
// nothing else: no half-made instance, no leftover of a crash.
func (f *crashFleet) wantOnly(version string) {
	f.t.Helper()
	targetstest.Eventually(f.t, 20*time.Second, fmt.Sprintf("only %d instances of %s", crashReplicas, version), func() bool {
		ps := instanceProcesses(f.t, filepath.Join(f.state, "instances"))
		if len(ps) != crashReplicas {
			return false
		}
		for _, p := range ps {
			if p.env["VERSION"] != version {
				return false
			}
		}
		return true
	})
}

// instanceProc is one live instance process: a session leader whose
// working directory is under the instances directory.
type instanceProc struct {
	pid int
	env map[string]string
}

func (p instanceProc) String() string {
	return fmt.Sprintf("pid %d %s %s", p.pid, p.env["MOLT_INSTANCE"], p.env["VERSION"])
}

// instanceProcesses lists the live session leaders whose working
// directory is inside dir, with their environment.
func instanceProcesses(t testing.TB, dir string) []instanceProc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []instanceProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || !strings.HasPrefix(cwd, dir+string(filepath.Separator)) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat)[i+1:])
		if len(f) < 4 || f[0] == "Z" || f[0] == "X" || f[3] != e.Name() { // field 6, the session
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		env := map[string]string{}
		for _, kv := range strings.Split(string(raw), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
		out = append(out, instanceProc{pid: pid, env: env})
	}
	return out
}

// instanceSampler looks at the live instances every 25 ms: how many of
// each service live (half-made ones included) and how many answer their
// health check.
type instanceSampler struct {
	stopc   chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples int
	peak    map[string]int
	low     map[string]int
	lowDesc map[string]string
	once    sync.Once
}

func startSampler(t *testing.T, dir string) *instanceSampler {
	s := &instanceSampler{stopc: make(chan struct{}), done: make(chan struct{}),
		peak: map[string]int{}, low: map[string]int{}, lowDesc: map[string]string{}}
	client := &http.Client{Timeout: 2 * time.Second}
	go func() {
		defer close(s.done)
		for range 100000 { // bounded
			select {
			case <-s.stopc:
				return
			case <-time.After(25 * time.Millisecond):
			}
			ps := instanceProcesses(t, dir)
			var wg sync.WaitGroup
			var hmu sync.Mutex
			live, healthy := map[string]int{}, map[string]int{}
			for _, p := range ps {
				svc := p.env["MOLT_SERVICE"]
				live[svc]++
				port := p.env["PORT"]
				if port == "" {
					continue
				}
				wg.Go(func() {
					resp, err := client.Get("http://127.0.0.1:" + port + "/healthz")
					if err != nil {
						return
					}
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						hmu.Lock()
						healthy[svc]++
						hmu.Unlock()
					}
				})
			}
			wg.Wait()
			s.mu.Lock()
			s.samples++
			for svc, n := range live {
				s.peak[svc] = max(s.peak[svc], n)
				if l, ok := s.low[svc]; !ok || healthy[svc] < l {
					s.low[svc] = healthy[svc]
					s.lowDesc[svc] = fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), ps)
				}
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// stop ends the sampling and returns the number of samples, and the most
// instances that lived and the fewest that were healthy, of service.
func (s *instanceSampler) stop(service string) (samples, peak, low int) {
	s.once.Do(func() { close(s.stopc) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.peak[service], s.low[service]
}

func (s *instanceSampler) lowAt(service string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lowDesc[service]
}

// getJSONQuiet is getJSON for a server that may not answer yet: any
// failure is a status of 0.
func getJSONQuiet(url string, v any) int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return 0
	}
	return resp.StatusCode
}
