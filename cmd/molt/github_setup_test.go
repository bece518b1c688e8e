package main

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/molt-dev/molt/reconciler"
	"github.com/molt-dev/molt/sources/github"
	"github.com/prometheus/client_golang/prometheus"
)

// TestGitHubChoice: the API is derived from the repository's host only
// for github.com; any other host needs --github-api-url or reporting is
// off (saying why); a token never goes over plain http to another
// machine; flags that cannot work together are usage errors.
func TestGitHubChoice(t *testing.T) {
	type want struct {
		api, web, off string
		auth          githubAuth
		usage         string // a usage error with this text
	}
	tests := []struct {
		name  string
		f     serveFlags
		env   bool
		want  want
		named bool
	}{
		{"github.com over https", serveFlags{src: sourceFlags{repo: "https://github.com/acme/fleet.git"}, githubTokenFile: "/t"}, false,
			want{api: github.DefaultAPIURL, web: "https://github.com/", auth: authTokenFile}, true},
		{"github.com over ssh", serveFlags{src: sourceFlags{repo: "git@github.com:acme/fleet.git"}}, true,
			want{api: github.DefaultAPIURL, web: "https://github.com/", auth: authTokenEnv}, true},
		{"GitHub Enterprise without its API", serveFlags{src: sourceFlags{repo: "https://ghe.example/acme/fleet.git"}, githubTokenFile: "/t"}, false,
			want{web: "https://ghe.example/", auth: authTokenFile,
				off: "the repository is on ghe.example, not github.com, and --github-api-url is not given (for GitHub Enterprise Server: --github-api-url https://ghe.example/api/v3/)"}, true},
		{"GitHub Enterprise as an app, without its API", serveFlags{src: sourceFlags{repo: "ssh://git@ghe.example:2222/acme/fleet.git"}, githubAppID: 1, githubAppKeyFile: "/k"}, false,
			want{web: "https://ghe.example/", auth: authApp, off: "the repository is on ghe.example"}, true},
		{"GitHub Enterprise with its API", serveFlags{src: sourceFlags{repo: "https://ghe.example/acme/fleet.git"}, githubTokenFile: "/t", githubAPIURL: "https://ghe.example/api/v3/"}, false,
			want{api: "https://ghe.example/api/v3/", web: "https://ghe.example/", auth: authTokenFile}, true},
		{"GitHub Enterprise without credentials", serveFlags{src: sourceFlags{repo: "https://ghe.example/acme/fleet.git"}}, false,
			want{web: "https://ghe.example/"}, true},
		{"a local path named on GitHub", serveFlags{src: sourceFlags{repo: "/srv/fleet"}, githubRepo: "acme/fleet"}, true,
			want{auth: authTokenEnv, off: "the repository is not a github.com URL and --github-api-url is not given (for GitHub.com: --github-api-url https://api.github.com/)"}, true},
		{"a local path, with the API", serveFlags{src: sourceFlags{repo: "/srv/fleet"}, githubRepo: "acme/fleet", githubAPIURL: "https://api.github.com/"}, true,
			want{api: "https://api.github.com/", web: "https://github.com/", auth: authTokenEnv}, true},
		{"a test server on this machine", serveFlags{src: sourceFlags{repo: "http://127.0.0.1:1/fleet.git"}, githubRepo: "acme/fleet", githubAPIURL: "http://127.0.0.1:2/"}, true,
			want{api: "http://127.0.0.1:2/", web: "http://127.0.0.1:2/", auth: authTokenEnv}, true},
		{"a local path without credentials", serveFlags{src: sourceFlags{repo: "/srv/fleet"}}, false, want{}, false},

		{"http to another host", serveFlags{src: sourceFlags{repo: "https://ghe.example/a/b"}, githubAPIURL: "http://ghe.example/api/v3/"}, false,
			want{usage: "clear text"}, false},
		{"a token without the repository", serveFlags{src: sourceFlags{repo: "/srv/fleet"}}, true,
			want{usage: "pass --github-repo"}, false},
		{"app id without key", serveFlags{src: sourceFlags{repo: "https://github.com/a/b"}, githubAppID: 1}, false,
			want{usage: "needs both --github-app-id and --github-app-key-file"}, false},
		{"key without app id", serveFlags{src: sourceFlags{repo: "https://github.com/a/b"}, githubAppKeyFile: "/k"}, false,
			want{usage: "needs both"}, false},
		{"installation without app", serveFlags{src: sourceFlags{repo: "https://github.com/a/b"}, githubAppInstallationID: 3}, false,
			want{usage: "--github-app-installation-id needs"}, false},
		{"negative app id", serveFlags{src: sourceFlags{repo: "https://github.com/a/b"}, githubAppID: -1, githubAppKeyFile: "/k"}, false,
			want{usage: "positive numbers"}, false},
		{"app and token file", serveFlags{src: sourceFlags{repo: "https://github.com/a/b"}, githubAppID: 1, githubAppKeyFile: "/k", githubTokenFile: "/t"}, false,
			want{usage: "not both"}, false},
		{"public url not absolute", serveFlags{src: sourceFlags{repo: "https://github.com/a/b"}, publicURL: "molt.example"}, false,
			want{usage: "--public-url"}, false},
		{"public url not http", serveFlags{src: sourceFlags{repo: "https://github.com/a/b"}, publicURL: "ftp://molt.example/"}, false,
			want{usage: "--public-url"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := chooseGitHub(tt.f, tt.env)
			if tt.want.usage != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want.usage) {
					t.Fatalf("err = %v, want a usage error with %q", err, tt.want.usage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.apiURL != tt.want.api || c.web != tt.want.web || c.auth != tt.want.auth || c.named != tt.named ||
				!strings.HasPrefix(c.off, tt.want.off) || (tt.want.off == "") != (c.off == "") {
				t.Errorf("chose %+v, want %+v (named %v)", c, tt.want, tt.named)
			}
		})
	}
	c, err := chooseGitHub(serveFlags{src: sourceFlags{repo: "https://github.com/a/b"}, githubAppID: 1, githubAppKeyFile: "/k"}, true)
	if err != nil || c.auth != authApp || !c.envIgnored {
		t.Errorf("app flags with MOLT_GITHUB_TOKEN set: %+v, %v; want the app, the token ignored", c, err)
	}
}

// TestGitHubReporterLinks: a rollout's outcome comment is queued before
// its molt/deploy status, which links to it, or to --public-url.
func TestGitHubReporterLinks(t *testing.T) {
	const rev = "main@sha1:0123456789abcdef0123456789abcdef01234567"
	failed := reconciler.Outcome{Revision: rev, Result: reconciler.Result{
		Failures: []reconciler.Failure{{Service: "web", Revision: rev, Reason: "unhealthy"}},
	}}
	t.Setenv("MOLT_GITHUB_TOKEN", "")
	for _, public := range []string{"", "https://molt.example/"} {
		f := serveFlags{src: sourceFlags{repo: "https://github.com/acme/fleet.git"}, stateDir: t.TempDir(), publicURL: public}
		rep, client, err := newReporter(f, nil, slog.New(slog.DiscardHandler))
		if err != nil || client != nil {
			t.Fatalf("newReporter: %v, %v", client, err)
		}
		rep.onResult(failed)
		pending := rep.queue.Pending()
		if len(pending) != 2 || pending[0].Outcome == nil || pending[1].Status == nil {
			t.Fatalf("queued %v, want the outcome, then the status", pending)
		}
		st := pending[1].Status
		if st.TargetURL != public || st.LinkOutcome != github.OutcomeFailure || st.Context != github.ContextDeploy {
			t.Errorf("with --public-url %q: status %+v", public, st)
		}
	}
}

// TestGitHubRefusalsMetric: serve's metrics expose the client's
// refusals, one series per permission and answer.
func TestGitHubRefusalsMetric(t *testing.T) {
	c, err := github.NewClient(github.ClientOptions{Token: []byte("t"), Owner: "acme", Repo: "fleet"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := newServeMetrics(reg)
	m.githubRefusals(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]bool{}
	for _, fam := range families {
		if fam.GetName() != "molt_github_refused_total" {
			continue
		}
		for _, s := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			series[labels["permission"]+" "+labels["status"]] = true
		}
	}
	for _, want := range []string{"statuses:write 401", "statuses:write 403", "pull_requests:write 404", "contents:write,pull_requests:write 403"} {
		if !series[want] {
			t.Errorf("no series %q among %v", want, series)
		}
	}
	if len(series) != 9 {
		t.Errorf("%d series, want 9", len(series))
	}
}

// TestGitHubCredentials: a GitHub App counts as credentials, as a token
// does (for --github-allow, which needs them).
func TestGitHubCredentials(t *testing.T) {
	t.Setenv("MOLT_GITHUB_TOKEN", "")
	for _, tt := range []struct {
		f    serveFlags
		env  string
		want bool
	}{
		{serveFlags{}, "", false},
		{serveFlags{}, "ghs_x", true},
		{serveFlags{githubAppID: 1, githubAppKeyFile: "/k"}, "", true},
	} {
		t.Setenv("MOLT_GITHUB_TOKEN", tt.env)
		if got, err := githubCredentials(tt.f); got != tt.want || err != nil {
			t.Errorf("githubCredentials(%+v) with MOLT_GITHUB_TOKEN=%q = %v, %v; want %v", tt.f, tt.env, got, err, tt.want)
		}
	}
}
