package gittest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// SSHServer is an in-process SSH server that runs the real
// git-upload-pack for the repositories under a root, for one client key.
type SSHServer struct {
	Addr string // 127.0.0.1:port
	// KeyFile is the client's private key (OpenSSH PEM), KnownHosts a
	// known_hosts file naming the server's host key.
	KeyFile, KnownHosts string
	// Execs counts the upload-pack sessions served.
	mu    sync.Mutex
	execs int
}

// Execs returns how many git-upload-pack sessions were served.
func (s *SSHServer) Execs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.execs
}

// ServeSSH starts an SSH server for the bare repositories under root,
// closed when the test ends. Only git-upload-pack may run, only on paths
// inside root, and only for the client key it writes to KeyFile.
func ServeSSH(t testing.TB, root string) *SSHServer {
	t.Helper()
	dir := t.TempDir()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(clientPriv, "molt test")
	if err != nil {
		t.Fatal(err)
	}
	s := &SSHServer{KeyFile: filepath.Join(dir, "id_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts")}
	if err := os.WriteFile(s.KeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	allowed, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if string(key.Marshal()) == string(allowed.Marshal()) {
			return nil, nil
		}
		return nil, fmt.Errorf("unknown key")
	}}
	cfg.AddHostKey(hostSigner)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	host, port, _ := net.SplitHostPort(s.Addr)
	line := fmt.Sprintf("[%s]:%s %s", host, port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostSigner.PublicKey()))))
	if err := os.WriteFile(s.KnownHosts, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serveConn(t, c, cfg, root)
			}()
		}
	}()
	return s
}

func (s *SSHServer) serveConn(t testing.TB, c net.Conn, cfg *ssh.ServerConfig, root string) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range chReqs {
				if req.Type != "exec" || len(req.Payload) < 4 {
					req.Reply(false, nil)
					continue
				}
				n := binary.BigEndian.Uint32(req.Payload)
				command := string(req.Payload[4 : 4+n])
				req.Reply(true, nil) // the client sends its side only after this
				status := s.exec(ch, command, root)
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(status)))
				return
			}
		}()
	}
}

// exec runs `git-upload-pack 'PATH'` against root/PATH and returns its
// exit status; any other command is refused.
func (s *SSHServer) exec(ch ssh.Channel, command, root string) int {
	prog, arg, ok := strings.Cut(command, " ")
	if !ok || prog != "git-upload-pack" {
		fmt.Fprintf(ch.Stderr(), "only git-upload-pack is allowed\n")
		return 1
	}
	rel := strings.Trim(arg, "'\"")
	path := filepath.Join(root, filepath.Clean("/"+rel))
	s.mu.Lock()
	s.execs++
	s.mu.Unlock()
	cmd := exec.Command("git", "upload-pack", path)
	cmd.Env = Env()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return 1
	}
	return 0
}
