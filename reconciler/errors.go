package reconciler

import (
	"errors"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// Class is how the reconciler treats an error, as Flux does: a stalling
// error needs a change from the user (a new commit) and is not retried; a
// waiting error is retried at a known time; every other error is transient
// and retried with jittered backoff.
type Class int

const (
	Transient Class = iota
	Stalling
	Waiting
)

func (c Class) String() string {
	return [...]string{"transient", "stalling", "waiting"}[c]
}

// WaitError says that an operation cannot go on before Until.
type WaitError struct {
	Until time.Time
	Err   error
}

func (e *WaitError) Error() string {
	return "waiting until " + e.Until.UTC().Format(time.RFC3339) + ": " + e.Err.Error()
}
func (e *WaitError) Unwrap() error { return e.Err }

// Classify returns the class of err, looking through every wrap: an
// invalid instance spec (targets.ErrInvalidSpec), routes a front refuses
// (targets.ErrInvalidRoutes) or an invalid fleet
// (*schema.InvalidError) stalls; a *WaitError waits; anything else is
// transient.
func Classify(err error) Class {
	var inv *schema.InvalidError
	var w *WaitError
	switch {
	case errors.Is(err, targets.ErrInvalidSpec), errors.Is(err, targets.ErrInvalidRoutes), errors.As(err, &inv):
		return Stalling
	case errors.As(err, &w):
		return Waiting
	}
	return Transient
}
