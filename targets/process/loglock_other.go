//go:build !unix

package process

import (
	"os"
	"time"
)

// Without flock, a follower and a rotation do not take turns (see
// loglock_unix.go).

func lockShared(*os.File) (unlock func()) { return func() {} }

func lockExclusive(*os.File, time.Duration) (unlock func(), ok bool) { return func() {}, true }
