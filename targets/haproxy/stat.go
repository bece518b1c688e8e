package haproxy

import (
	"context"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
)

// server is one server of a backend as "show stat" reports it.
type server struct {
	backend, name string
	addr          string // "127.0.0.1:40123"
	status        string // "no check", "UP", "DRAIN", "MAINT", ...
	weight        int    // the user weight (uweight)
	scur, qcur    int64  // current sessions, queued requests
	counters
}

// counters are a server's cumulative counters, since HAProxy created it.
type counters struct {
	Requests  int64 `json:"requests"`  // stot: streams (HTTP requests) sent to it
	Status5xx int64 `json:"5xx"`       // hrsp_5xx
	Errors    int64 `json:"errors"`    // econ + eresp: attempts with no response
	RTimeMS   int64 `json:"rtimeMs"`   // rtime: average response time, ms, over its last 1024 requests
	Responses int64 `json:"responses"` // hrsp_1xx..hrsp_other
}

// key names a server across backends.
func (s server) key() string { return s.backend + "/" + s.name }

// ready reports whether the server takes new requests: it is neither in
// maintenance nor draining.
func (s server) ready() bool { return !s.maint() && !s.draining() }

func (s server) maint() bool    { return strings.HasPrefix(s.status, "MAINT") }
func (s server) draining() bool { return strings.HasPrefix(s.status, "DRAIN") }

// idle reports whether nothing is in flight or waiting on the server.
func (s server) idle() bool { return s.scur == 0 && s.qcur == 0 }

// showStat reads every server of every backend ("show stat", servers
// only). Columns are found by their names in the header, so the order
// and number of columns of a HAProxy version do not matter.
func (s socket) showStat(ctx context.Context) ([]server, error) {
	out, err := s.run(ctx, "show stat -1 4 -1")
	if err != nil {
		return nil, err
	}
	return parseStat(out)
}

func parseStat(out string) ([]server, error) {
	if !strings.HasPrefix(out, "# ") {
		return nil, fmt.Errorf("show stat: unexpected answer %q", firstLine(out))
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	r.ReuseRecord = false
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("show stat: header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, need := range []string{"pxname", "svname", "type", "scur", "stot", "status"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("show stat: no %s column", need)
		}
	}
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("show stat: %w", err)
	}
	var servers []server
	for _, row := range rows {
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(row) {
				return row[i]
			}
			return ""
		}
		num := func(name string) int64 {
			n, _ := strconv.ParseInt(get(name), 10, 64)
			return n
		}
		if get("type") != "2" { // servers only
			continue
		}
		sv := server{backend: get("pxname"), name: get("svname"), addr: get("addr"), status: get("status"),
			scur: num("scur"), qcur: num("qcur")}
		w := get("uweight")
		if w == "" {
			w = get("weight")
		}
		sv.weight, _ = strconv.Atoi(w)
		sv.Requests = num("stot")
		sv.Status5xx = num("hrsp_5xx")
		sv.Errors = num("econ") + num("eresp")
		sv.RTimeMS = num("rtime")
		sv.Responses = num("hrsp_1xx") + num("hrsp_2xx") + num("hrsp_3xx") + num("hrsp_4xx") + num("hrsp_5xx") + num("hrsp_other")
		servers = append(servers, sv)
	}
	return servers, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
