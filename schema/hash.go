package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// specHashVersion is mixed into every hash: bump it only when the meaning of
// an instance's spec changes, since a new hash replaces every instance.
const specHashVersion = "molt/spec/v1"

// SpecHash returns a stable hash of everything that makes an instance what it
// is: the process or container definition, the environment, the ports and
// the stop grace. Replicas, health checks, rollout and exposure settings are
// not part of it: changing them never replaces an instance. Two instances
// with the same hash are interchangeable.
//
// extra carries resolved facts that belong to the identity, such as the
// content id a Docker image tag resolved to, or the keyed digest of each
// secret of SecretEnv (which enters the hash only that way: where a secret
// is read from is not part of it, its content is); pass nil when there are
// none.
func (s *Service) SpecHash(extra map[string]string) string {
	doc := struct {
		V         string            `json:"v"`
		Process   *Process          `json:"process,omitempty"`
		Docker    *Docker           `json:"docker,omitempty"`
		Env       map[string]string `json:"env,omitempty"`
		Ports     map[string]int    `json:"ports,omitempty"`
		StopGrace int64             `json:"stopGrace"`
		Extra     map[string]string `json:"extra,omitempty"`
	}{specHashVersion, s.Process, s.Docker, s.Env, s.Ports, int64(s.StopGrace), extra}
	// encoding/json sorts map keys, so the encoding is canonical.
	b, err := json.Marshal(doc)
	if err != nil {
		panic("schema: spec hash: " + err.Error()) // only plain values above
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}
