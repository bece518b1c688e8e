package github

import (
	"fmt"
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
