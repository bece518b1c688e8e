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

// Events are the event names that Receiver.EventCounts counts apart; any
// other X-GitHub-Event (or none, or one that cannot be trusted yet) counts
// as "other", so that a sender cannot grow the set.
var Events = [...]string{"ping", "push", "pull_request", "issue_comment", "other"}

// eventIndex returns the index in Events of an X-GitHub-Event name.
func eventIndex(name string) int {
	for i, e := range Events[:len(Events)-1] {
		if e == name {
			return i
		}
	}
	return len(Events) - 1
}

type counters [numOutcomes]atomic.Int64

// eventCounters are counters by event (the index in Events).
type eventCounters [len(Events)]counters

// add counts one delivery of the event at index ev with outcome o.
func (c *eventCounters) add(ev int, o outcome) { c[ev][o].Add(1) }

// total sums the counters of every event.
func (c *eventCounters) total() Counts {
	var t Counts
	for i := range c {
		s := c[i].snapshot()
		t.Accepted += s.Accepted
		t.Ignored += s.Ignored
		t.BadSignature += s.BadSignature
		t.TooLarge += s.TooLarge
		t.Malformed += s.Malformed
		t.Duplicate += s.Duplicate
	}
	return t
}

// byEvent returns the counts of every event of Events, zeros included.
func (c *eventCounters) byEvent() map[string]Counts {
	out := make(map[string]Counts, len(Events))
	for i, name := range Events {
		out[name] = c[i].snapshot()
	}
	return out
}

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
