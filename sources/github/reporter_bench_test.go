package github

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkEnqueue measures what a reconcile pays to report: Enqueue
// with its atomic write of the queue file (fsync included).
func BenchmarkEnqueue(b *testing.B) {
	q, err := NewQueue(QueueOptions{Dir: b.TempDir(), Reporter: LogReporter{}})
	if err != nil {
		b.Fatal(err)
	}
	sha := strings.Repeat("a", 40)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		q.Enqueue(Report{Plan: &PlanInput{PR: 1 + i%20, SHA: sha, PlanText: strings.Repeat("x", 2000)}})
	}
}

// BenchmarkPlanCommentCut renders a plan far over GitHub's limit.
func BenchmarkPlanCommentCut(b *testing.B) {
	var raw strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&raw, "  + instance web-%05d of sha256:b7d42e1f0a9c (spec changed)\n", i)
	}
	in := PlanInput{PR: 1, SHA: strings.Repeat("a", 40), PlanMarkdown: "plan\n", PlanText: raw.String()}
	b.ReportAllocs()
	for b.Loop() {
		PlanComment(in)
	}
}
