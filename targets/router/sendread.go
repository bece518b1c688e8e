package router

import (
	"bufio"
	"errors"
	"net"
)

// errClosing ends a read whose then said no (see sendReader).
var errClosing = errors.New("closing")

// send sends what w holds, then calls then (unless nil): errClosing if it
// says no.
func send(w *bufio.Writer, then func() bool) error {
	if err := w.Flush(); err != nil {
		return err
	}
	if then != nil && !then() {
		return errClosing
	}
	return nil
}

// sendThenRead is a sendReader's Read where it has no raw connection: it
// sends what w holds (unless nil), calls then, and reads nc as usual.
func sendThenRead(nc net.Conn, w *bufio.Writer, then func() bool, p []byte) (int, error) {
	if w != nil {
		if err := send(w, then); err != nil {
			return 0, err
		}
	}
	return nc.Read(p)
}
