package github

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDeliveriesForgetOldestFirst(t *testing.T) {
	d := newDeliveries(3)
	steps := []struct {
		id   string
		want bool
	}{
		{"a", true}, {"b", true}, {"a", false}, {"c", true}, // a b c
		{"d", true},                // b c d: a forgotten
		{"a", true},                // c d a
		{"b", true},                // d a b
		{"d", false}, {"a", false}, // still there
		{"c", true}, // a b c
	}
	for i, s := range steps {
		if got := d.add(s.id); got != s.want {
			t.Fatalf("step %d: add(%q) = %t, want %t", i, s.id, got, s.want)
		}
	}
	if len(d.ids) != 3 || len(d.ring) != 3 {
		t.Fatalf("remembers %d ids in a ring of %d, want 3 and 3", len(d.ids), len(d.ring))
	}
}

func TestDeliveriesBounded(t *testing.T) {
	d := newDeliveries(100)
	for i := range 1000 {
		if !d.add(fmt.Sprint(i)) {
			t.Fatalf("id %d seen before", i)
		}
	}
	if len(d.ids) != 100 {
		t.Fatalf("remembers %d ids, want 100", len(d.ids))
	}
	if d.add("999") || !d.add("0") {
		t.Fatal("want the newest ids remembered and the oldest forgotten")
	}
}

// TestDeliveriesKeptAcrossRestarts: with a file, a redelivery after a
// restart is still recognised; the file stays bounded and a torn line is
// skipped.
func TestDeliveriesKeptAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "github-deliveries")
	d := newDeliveries(10)
	if err := d.persist(path, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		if !d.add(fmt.Sprintf("id-%d", i)) {
			t.Fatalf("id-%d not new", i)
		}
	}
	d.f.Close()
	// A torn write at the end.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	f.WriteString("id-to")
	f.Close()

	again := newDeliveries(10)
	if err := again.persist(path, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	for i := 15; i < 25; i++ {
		if again.add(fmt.Sprintf("id-%d", i)) {
			t.Errorf("id-%d was forgotten across the restart", i)
		}
	}
	if !again.add("id-3") {
		t.Error("id-3, older than the 10 kept, is still remembered")
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "\n"); n > 20 {
		t.Errorf("the file holds %d ids, want at most 2 × 10", n)
	}
}
