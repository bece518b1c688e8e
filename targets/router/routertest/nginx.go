// Package routertest holds what the router's benchmarks and molt's bench
// harness share to compare the router with nginx.
package routertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Nginx describes an nginx reverse proxy set up as the router is: HTTP/1.1
// to the backends on kept-alive connections, round robin, with the Host
// and X-Forwarded-* fields the router sets, and no access log.
type Nginx struct {
	Dir       string   // its prefix: pid file, error log and temporary files
	Listen    string   // host:port it listens on
	Backends  []string // host:port of each backend
	Keepalive int      // idle connections kept per worker (the upstream's keepalive)
}

// Config returns nginx.conf for n. nginx runs in the foreground (daemon
// off): a daemon calls setsid, and with the kernel's autogroup scheduling
// (sched_autogroup_enabled) a new session gets a CPU share of its own, so
// on a loaded machine the comparison would measure the scheduler, not the
// proxies (a daemonized nginx did 27k requests/s where the same nginx in
// the foreground did 38k, on 2 cores shared with wrk and the backends).
func (n Nginx) Config() string {
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n" // the workers write their temporary files under Dir
	}
	var servers strings.Builder
	for _, b := range n.Backends {
		fmt.Fprintf(&servers, "\t\tserver %s;\n", b)
	}
	return fmt.Sprintf(`%sdaemon off;
worker_processes auto;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	upstream backends {
%[3]s		keepalive %[4]d;
	}
	server {
		listen %[5]s;
		location / {
			proxy_pass http://backends;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Host $host;
			proxy_set_header X-Forwarded-Proto $scheme;
		}
	}
}
`, user, n.Dir, servers.String(), n.Keepalive, n.Listen)
}

// Command writes Config to Dir/nginx.conf and returns the command that
// runs bin on it, with its prefix and error log in Dir.
func (n Nginx) Command(bin string) (*exec.Cmd, error) {
	path := filepath.Join(n.Dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(n.Config()), 0o644); err != nil {
		return nil, err
	}
	return exec.Command(bin, "-p", n.Dir, "-c", path, "-e", filepath.Join(n.Dir, "error.log")), nil
}
