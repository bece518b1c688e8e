//go:build !linux

package router

import (
	"context"
	"time"
)

// DefaultLogMax is the size past which KeepLog moves router.log to
// router.log.1.
const DefaultLogMax = 10 << 20

// KeepLog does nothing here: see logfile_linux.go.
func KeepLog(context.Context, string, time.Duration, int64) {}
