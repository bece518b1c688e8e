package github

import "sync/atomic"

// Counts is how many deliveries a Receiver has answered, by outcome.
// Every delivery counts exactly once.
type Counts struct {
	Accepted     int64 // verified and acted on: a ping answered, a callback called
	Ignored      int64 // verified, well formed, and not for molt (another branch, a closed pull request, ...)
	BadSignature int64 // X-Hub-Signature-256 missing, malformed or wrong (401)
	TooLarge     int64 // body over MaxBody (413)
	Malformed    int64 // not a well-formed delivery: method, headers, content type or payload (405, 400, 415)
	Duplicate    int64 // a delivery id already answered (200, nothing done)
}

// outcome is one field of Counts; its String is the name to use as a
// metric label.
type outcome int

const (
	outAccepted outcome = iota
	outIgnored
	outBadSignature
	outTooLarge
	outMalformed
	outDuplicate
	numOutcomes
)

func (o outcome) String() string {
	return [...]string{"accepted", "ignored", "bad_signature", "too_large", "malformed", "duplicate"}[o]
}

type counters [numOutcomes]atomic.Int64

func (c *counters) snapshot() Counts {
	return Counts{
		Accepted:     c[outAccepted].Load(),
		Ignored:      c[outIgnored].Load(),
		BadSignature: c[outBadSignature].Load(),
		TooLarge:     c[outTooLarge].Load(),
		Malformed:    c[outMalformed].Load(),
		Duplicate:    c[outDuplicate].Load(),
	}
}
