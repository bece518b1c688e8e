package router

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// EnvManaged is the variable EnsureRunning sets in the environment of the
// router it starts, to the absolute state directory. A router process
// without it was started by someone else (systemd, a person): molt uses
// it, and never stops or replaces it.
const EnvManaged = "MOLT_ROUTER_STATE_DIR"

// procRoot is /proc; tests point it elsewhere.
var procRoot = "/proc"

// Process is a router process of a state directory, as read from /proc.
type Process struct {
	PID int
	// StartTime is the process's start in clock ticks after boot
	// (/proc/PID/stat field 22): a pid reused by another process has
	// another one, so a signal is sent only to the process that was found.
	StartTime uint64
	// Managed: started by EnsureRunning (EnvManaged names this state
	// directory in its environment). Only a managed router is ever
	// stopped or replaced by molt.
	Managed bool
	// Systemd: the process runs under systemd (INVOCATION_ID is set).
	Systemd bool
	Args    []string
}

func (p Process) String() string {
	who := "started by molt"
	switch {
	case p.Systemd && !p.Managed:
		who = "run by systemd"
	case !p.Managed:
		who = "not started by molt"
	}
	return fmt.Sprintf("pid %d (%s)", p.PID, who)
}

// FindRouters lists the live processes that are routers of stateDir: those
// whose environment names it in EnvManaged, and those whose command line is
// `EXE router ... --state-dir DIR` ("router" the first argument that is not
// a flag) (or `--state-dir=DIR`, a relative DIR
// read from the process's working directory; without the flag,
// MOLT_STATE_DIR of its environment or .molt, for an executable named
// molt*) with DIR the same directory. A process whose environment cannot be
// read (another user's) counts as not managed. Zombies, and the calling
// process, are left out. It changes nothing.
func FindRouters(stateDir string) ([]Process, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("find routers: %w", err)
	}
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if p, ok := routerOf(pid, abs); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// routerOf reads process pid and reports whether it is a live router of
// the absolute state directory abs.
func routerOf(pid int, abs string) (Process, bool) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil || len(cmdline) == 0 {
		return Process{}, false // gone, or a kernel thread
	}
	args := splitNUL(cmdline)
	env := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil {
		for _, kv := range splitNUL(b) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	managed := env[EnvManaged] != "" && sameDir(env[EnvManaged], abs)
	if !managed {
		d, ok := stateDirArg(args, env)
		if !ok {
			return Process{}, false
		}
		if !filepath.IsAbs(d) {
			cwd, err := os.Readlink(filepath.Join(dir, "cwd"))
			if err != nil {
				return Process{}, false
			}
			d = filepath.Join(cwd, d)
		}
		if !sameDir(d, abs) {
			return Process{}, false
		}
	}
	start, state, ok := readStat(pid)
	if !ok || state == "Z" || state == "X" {
		return Process{}, false
	}
	_, systemd := env["INVOCATION_ID"]
	return Process{PID: pid, StartTime: start, Managed: managed, Systemd: systemd, Args: args}, true
}

// stateDirArg returns the state directory of a `router` command line, and
// false for any other command line.
func stateDirArg(args []string, env map[string]string) (string, bool) {
	if len(args) < 2 {
		return "", false
	}
	// The subcommand is the first argument that is not a flag: "molt
	// apply --repo router" is no router.
	i := slices.IndexFunc(args[1:], func(a string) bool { return !strings.HasPrefix(a, "-") })
	if i < 0 || args[i+1] != "router" {
		return "", false
	}
	rest := args[i+2:]
	for j, a := range rest {
		if a == "--state-dir" && j+1 < len(rest) {
			return rest[j+1], true
		}
		if v, ok := strings.CutPrefix(a, "--state-dir="); ok {
			return v, true
		}
	}
	if !strings.HasPrefix(filepath.Base(args[0]), "molt") {
		return "", false // "router" in another program's arguments
	}
	if v := env["MOLT_STATE_DIR"]; v != "" {
		return v, true
	}
	return ".molt", true
}

// sameDir reports whether a and b name the same directory: the same clean
// path, or the same directory once symlinks are resolved.
func sameDir(a, b string) bool {
	a, b = filepath.Clean(a), filepath.Clean(b)
	if a == b {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

func splitNUL(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// readStat reads a process's start time and state from /proc/PID/stat.
func readStat(pid int) (start uint64, state string, ok bool) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, "", false
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0], err == nil
}

// alive reports whether p still runs: the same pid with the same start
// time, not a zombie.
func (p Process) alive() bool {
	start, state, ok := readStat(p.PID)
	return ok && start == p.StartTime && state != "Z" && state != "X"
}

// stopPoll is how often stopProcess looks whether the process is gone.
const stopPoll = 20 * time.Millisecond

// stopProcess ends a managed router: SIGTERM (it stops accepting and lets
// its requests finish), then SIGKILL if it still runs after grace. A
// signal goes only to the process that was found (same start time). It
// returns once the process is gone, or an error after another grace.
func stopProcess(p Process, grace time.Duration) error {
	if !p.Managed {
		return fmt.Errorf("stop router %s: not molt's to stop", p)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if !p.alive() {
			return nil
		}
		if err := syscall.Kill(p.PID, sig); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("stop router %s: %w", p, err)
		}
		for deadline := time.Now().Add(grace); time.Now().Before(deadline); time.Sleep(stopPoll) {
			if !p.alive() {
				return nil
			}
		}
	}
	return fmt.Errorf("stop router %s: still running after SIGKILL", p)
}

// ListenHolders returns, for each of addrs (host:port) that a process
// listens on over TCP, the pid of a process holding that listening socket
// (from the LISTEN entries of /proc/net/tcp and tcp6 and the socket
// descriptors in /proc/PID/fd). A listener on the unspecified address
// (0.0.0.0, ::) holds every address of its port. Sockets of processes
// whose descriptors cannot be read (another user's) are not found. It
// changes nothing.
func ListenHolders(addrs []string) (map[string]int, error) {
	type want struct {
		addr string
		ip   net.IP
		port int
	}
	var wants []want
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("listen holders: %w", err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("listen holders: port of %s: %w", a, err)
		}
		ip := net.ParseIP(host)
		if host == "" {
			ip = net.IPv4zero
		}
		wants = append(wants, want{a, ip, p})
	}
	inodes := map[uint64][]string{} // socket inode -> the addresses it holds
	for _, name := range []string{"tcp", "tcp6"} {
		socks, err := listenSockets(filepath.Join(procRoot, "net", name))
		if err != nil {
			continue // no IPv6, say
		}
		for _, s := range socks {
			for _, w := range wants {
				if s.port != w.port {
					continue
				}
				if s.ip.IsUnspecified() || w.ip == nil || w.ip.IsUnspecified() || s.ip.Equal(w.ip) {
					inodes[s.inode] = append(inodes[s.inode], w.addr)
				}
			}
		}
	}
	out := map[string]int{}
	if len(inodes) == 0 {
		return out, nil
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("listen holders: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(procRoot, e.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(procRoot, e.Name(), "fd", fd.Name()))
			if err != nil {
				continue
			}
			s, ok := strings.CutPrefix(link, "socket:[")
			if !ok {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
			if err != nil {
				continue
			}
			for _, a := range inodes[ino] {
				if _, seen := out[a]; !seen {
					out[a] = pid
				}
			}
		}
	}
	return out, nil
}

// listenSocket is a LISTEN entry of /proc/net/tcp or tcp6.
type listenSocket struct {
	ip    net.IP
	port  int
	inode uint64
}

// tcpListen is the state of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// listenSockets reads the LISTEN entries of a /proc/net/tcp-format file.
func listenSockets(path string) ([]listenSocket, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []listenSocket
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != tcpListen {
			continue
		}
		ip, port, err := parseProcAddr(fields[1])
		if err != nil {
			continue
		}
		ino, err := strconv.ParseUint(fields[9], 10, 64)
		if err != nil || ino == 0 {
			continue
		}
		out = append(out, listenSocket{ip: ip, port: port, inode: ino})
	}
	return out, sc.Err()
}

// parseProcAddr parses a local_address of /proc/net/tcp ("0100007F:1F90":
// the address in hex, 32-bit words in host order, here little-endian, and
// the port in hex).
func parseProcAddr(s string) (net.IP, int, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, fmt.Errorf("address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return nil, 0, err
	}
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil, 0, fmt.Errorf("address %q", s)
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b), int(port), nil
}
