//go:build unix

package router

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// loopbackPair returns the two ends of a TCP connection on loopback.
func loopbackPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	client.SetDeadline(time.Now().Add(10 * time.Second))
	server.SetDeadline(time.Now().Add(10 * time.Second))
	return client, server
}

// TestSendReaderSendsThenWaits: a read asked to send first sends, and then
// waits to be woken by the answer before it reads: it does not first make
// the read that would only find nothing there.
func TestSendReaderSendsThenWaits(t *testing.T) {
	client, server := loopbackPair(t)
	r := newSendReader(client)
	if r.rc == nil {
		t.Fatal("a TCP connection has no syscall.RawConn")
	}
	go func() {
		var b [4]byte
		if _, err := io.ReadFull(server, b[:]); err != nil || string(b[:]) != "ping" {
			return
		}
		time.Sleep(20 * time.Millisecond) // the answer comes late: a read that looked would find nothing
		io.WriteString(server, "pong")
	}()
	bw := bufio.NewWriter(client)
	bw.WriteString("ping")
	sent := false
	r.sendFirst(bw, func() bool { sent = bw.Buffered() == 0; return true })
	var buf [16]byte
	n, err := r.Read(buf[:])
	if err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("read %q, %v; want pong", buf[:n], err)
	}
	if !sent {
		t.Error("then was not called once the bytes were sent")
	}
	if r.waited {
		t.Error("the read looked for an answer before it was woken")
	}

	// A read not asked to send reads as usual, and says that it found
	// nothing at first (nothing comes: it ends on its deadline).
	client.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := r.Read(buf[:]); !errors.Is(err, os.ErrDeadlineExceeded) || !r.waited {
		t.Fatalf("read with nothing to read: %v, waited %v; want os.ErrDeadlineExceeded, having waited", err, r.waited)
	}
	client.SetReadDeadline(time.Time{})
	server.Close()
	if n, err = r.Read(buf[:]); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer closed: %d, %v; want io.EOF", n, err)
	}
}

// TestSendReaderDeadline: a read that ends on its deadline before it began
// has still sent what it was asked to, and called then; one whose then
// says no ends with errClosing, its bytes sent.
func TestSendReaderDeadline(t *testing.T) {
	client, server := loopbackPair(t)
	r := newSendReader(client)
	bw := bufio.NewWriter(client)
	bw.WriteString("ping")
	called := false
	r.sendFirst(bw, func() bool { called = true; return true })
	client.SetReadDeadline(time.Unix(1, 0))
	var buf [16]byte
	if _, err := r.Read(buf[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	if !called {
		t.Error("then was not called")
	}
	var b [4]byte
	if _, err := io.ReadFull(server, b[:]); err != nil || string(b[:]) != "ping" {
		t.Fatalf("the peer read %q, %v; want ping", b[:], err)
	}

	client.SetReadDeadline(time.Time{})
	bw.WriteString("bye!")
	r.sendFirst(bw, func() bool { return false })
	if _, err := r.Read(buf[:]); err != errClosing {
		t.Fatalf("read whose then says no: %v, want errClosing", err)
	}
	if _, err := io.ReadFull(server, b[:]); err != nil || string(b[:]) != "bye!" {
		t.Fatalf("the peer read %q, %v; want bye!", b[:], err)
	}
}

// TestSockWriter: a write larger than the socket's buffers is written
// whole, waiting while they are full; a write to a peer that is gone
// fails with the connection's error.
func TestSockWriter(t *testing.T) {
	client, server := loopbackPair(t)
	w := newSockWriter(client)
	if _, ok := w.(*sockWriter); !ok {
		t.Fatalf("a TCP connection's writer is %T, want a *sockWriter", w)
	}
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(i % 251)
	}
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // the buffers fill first
		b, _ := io.ReadAll(io.LimitReader(server, int64(len(big))))
		got <- b
	}()
	if n, err := w.Write(big); n != len(big) || err != nil {
		t.Fatalf("write: %d, %v; want %d, nil", n, err, len(big))
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("the peer read %d bytes, not those written", len(b))
	}

	server.Close()
	var err error
	for range 100 { // the first write after the peer closed may still be accepted
		if _, err = w.Write([]byte("hello")); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "write" {
		t.Fatalf("write to a closed peer: %v, want a write *net.OpError", err)
	}
	client.Close()
	if _, err := w.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed connection: %v, want net.ErrClosed", err)
	}
}
