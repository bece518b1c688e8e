package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/molt-dev/molt/targets"
)

const (
	recordFile    = "instance.json"
	logFile       = "log"
	recordVersion = 1
)

// record is the content of instance.json: everything needed to recognise
// the instance's process after a restart, and nothing secret (the
// environment is not recorded).
type record struct {
	Version int            `json:"version"`
	ID      string         `json:"id"`
	Labels  targets.Labels `json:"labels"`
	// Command is the argv, its executable resolved to an absolute path
	// (where it was when the instance was provisioned).
	Command []string `json:"command"`
	// Artifact is the SHA-256 of the executable the process runs: the
	// store file Artifacts/sha256/<Artifact>. Empty in records written
	// before the store; such processes ran Command[0] itself.
	Artifact string `json:"artifact,omitempty"`
	PID      int    `json:"pid"`
	// StartTime is field 22 of /proc/<pid>/stat: clock ticks after boot.
	StartTime uint64         `json:"startTime"`
	BootID    string         `json:"bootId"`
	Host      string         `json:"host"`
	Ports     map[string]int `json:"ports,omitempty"`
	StopGrace duration       `json:"stopGrace"`
}

// duration reads and writes as a Go duration string ("10s").
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

func (r *record) validate() error {
	switch {
	case r.Version != recordVersion:
		return fmt.Errorf("unknown version %d", r.Version)
	case r.ID == "":
		return errors.New("no id")
	case r.Labels.Fleet == "" || r.Labels.Service == "" || r.Labels.SpecHash == "":
		return errors.New("missing labels")
	case r.PID <= 0:
		return fmt.Errorf("invalid pid %d", r.PID)
	case r.StartTime == 0 || r.BootID == "":
		return errors.New("no process start time or boot id")
	case net.ParseIP(r.Host) == nil:
		return fmt.Errorf("invalid host %q", r.Host)
	case r.StopGrace < 0:
		return errors.New("negative stop grace")
	case r.Artifact != "" && !validDigest(r.Artifact):
		return fmt.Errorf("invalid artifact %q", r.Artifact)
	}
	return nil
}

// endpoints maps each port name to host:port.
func (r *record) endpoints() map[string]string {
	eps := make(map[string]string, len(r.Ports))
	for name, port := range r.Ports {
		eps[name] = net.JoinHostPort(r.Host, strconv.Itoa(port))
	}
	return eps
}

// readRecord reads and checks dir/instance.json. A missing file is an error
// matching fs.ErrNotExist.
func readRecord(dir string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("corrupt %s: %w", recordFile, err)
	}
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("corrupt %s: %w", recordFile, err)
	}
	if r.ID != filepath.Base(dir) {
		return nil, fmt.Errorf("corrupt %s: id %q in directory %q", recordFile, r.ID, filepath.Base(dir))
	}
	return &r, nil
}

// writeRecord writes dir/instance.json atomically: a reader sees the old
// file, no file, or the whole new one.
func writeRecord(dir string, r *record) error {
	return writeJSON(dir, recordFile, r)
}

// writeJSON writes v as dir/name atomically.
func writeJSON(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	recordFile := name
	f, err := os.CreateTemp(dir, "."+recordFile+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, recordFile))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", recordFile, err)
	}
	return nil
}

// validID reports whether id can name an instance directory of Dir: one
// path element, not hidden (hidden entries are the Target's scratch space).
func validID(id string) bool {
	return id != "" && !strings.HasPrefix(id, ".") && !strings.ContainsAny(id, `/\`+"\x00")
}
