package router

import (
	"bufio"
	"errors"
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
