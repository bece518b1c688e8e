package github

import (
	"errors"
	"strings"
	"testing"
)

func TestVerifySignatureKnownVector(t *testing.T) {
	// From GitHub's documentation, "Validating webhook deliveries".
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if err := verifySignature([]byte("It's a Secret to Everybody"), []byte("Hello, World!"), want); err != nil {
		t.Fatalf("known vector refused: %v", err)
	}
	if got := sign([]byte("It's a Secret to Everybody"), []byte("Hello, World!")); got != want {
		t.Fatalf("test helper sign = %s, want %s", got, want)
	}
}

func TestVerifySignature(t *testing.T) {
	body := []byte("Hello, World!")
	good := sign(testSecret, body)
	flipped := good[:len(good)-1] + "f"
	if flipped == good {
		flipped = good[:len(good)-1] + "e"
	}
	tests := []struct {
		name   string
		secret []byte
		body   []byte
		header string
		want   error
	}{
		{"good", testSecret, body, good, nil},
		{"upper-case hex", testSecret, body, "sha256=" + strings.ToUpper(good[7:]), nil},
		{"empty secret", nil, body, sign(nil, body), errNoSecret},
		{"empty secret, empty header", []byte{}, body, "", errNoSecret},
		{"missing", testSecret, body, "", errNoSignature},
		{"last digit changed", testSecret, body, flipped, errSignatureInvalid},
		{"wrong secret", testSecret, body, sign([]byte("another secret"), body), errSignatureInvalid},
		{"other body", testSecret, []byte("Hello, World?"), good, errSignatureInvalid},
		{"no prefix", testSecret, body, good[7:], errSignatureFormat},
		{"sha1 prefix", testSecret, body, "sha1=" + good[7:], errSignatureFormat},
		{"short", testSecret, body, good[:len(good)-1], errSignatureFormat},
		{"long", testSecret, body, good + "0", errSignatureFormat},
		{"not hex", testSecret, body, good[:len(good)-1] + "g", errSignatureFormat},
		{"prefix only", testSecret, body, "sha256=", errSignatureFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := verifySignature(tt.secret, tt.body, tt.header); !errors.Is(err, tt.want) {
				t.Errorf("verifySignature = %v, want %v", err, tt.want)
			}
		})
	}
}
