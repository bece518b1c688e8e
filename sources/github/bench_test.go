package github

import (
	"net/http"
	"strconv"
	"testing"
)

// BenchmarkReceivePush measures what a delivery of push.json costs before
// any work: verifying the signature, parsing the payload and deciding.
func BenchmarkReceivePush(b *testing.B) {
	body := payload(b, "push.json")
	sig := sign(testSecret, body)
	s := scope{repo: "Codertocat/Hello-World", branch: "master"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := verifySignature(testSecret, body, sig); err != nil {
			b.Fatal(err)
		}
		ev, err := parseEvent("push", testDelivery, body)
		if err != nil {
			b.Fatal(err)
		}
		if d := s.decide(ev); !d.ignored {
			b.Fatal("push.json (a tag deletion) was not ignored")
		}
	}
}

// BenchmarkServeHTTPPush measures a whole answer to a push to the tracked
// branch through ServeHTTP (request headers, body read, de-duplication,
// callback), without the network.
func BenchmarkServeHTTPPush(b *testing.B) {
	r := newTestReceiver(b, ReceiverOptions{Secret: testSecret, Branch: "master", OnPush: func(Event) {}})
	body := payload(b, "push.with-new-branch.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		rec := serve(r, delivery{event: "push", id: strconv.Itoa(i), body: body}.request())
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
