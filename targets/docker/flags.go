package docker

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultEngineName names the engine of DefaultEngine.
const DefaultEngineName = "default"

// ParseEngine parses an engine as a command line spells it:
//
//	NAME=URL[,ca=FILE][,cert=FILE,key=FILE][,host-ip=IP][,max=N]
//
// such as "local=unix:///var/run/docker.sock" or
// "b=tcp://10.0.0.5:2376,ca=ca.pem,cert=cert.pem,key=key.pem,host-ip=10.0.0.5,max=20"
// (max: the most instances the engine may run, see Engine.Max).
// The result is validated.
func ParseEngine(s string) (Engine, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok {
		return Engine{}, fmt.Errorf("docker engine %q: want NAME=URL", s)
	}
	parts := strings.Split(rest, ",")
	e := Engine{Name: name, Host: parts[0]}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "ca":
			e.CACert = v
		case "cert":
			e.Cert = v
		case "key":
			e.Key = v
		case "host-ip":
			e.HostIP = v
		case "max":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return Engine{}, fmt.Errorf("docker engine %q: max=%q: want a number of instances, 1 or more", s, v)
			}
			e.Max = n
		default:
			return Engine{}, fmt.Errorf("docker engine %q: unknown option %q (want ca, cert, key, host-ip or max)", s, k)
		}
	}
	if err := e.validate(); err != nil {
		return Engine{}, fmt.Errorf("docker engine %q: %w", s, err)
	}
	return e, nil
}

// DefaultEngine is the engine the docker CLI would use, named "default":
// DOCKER_HOST or DefaultHost, with TLS from DOCKER_CERT_PATH (ca.pem,
// cert.pem, key.pem) when DOCKER_TLS_VERIFY or DOCKER_CERT_PATH is set.
// getenv is os.Getenv, or a stand-in in tests.
func DefaultEngine(getenv func(string) string) Engine {
	e := Engine{Name: DefaultEngineName, Host: getenv("DOCKER_HOST")}
	if e.Host == "" {
		e.Host = DefaultHost
	}
	if dir := getenv("DOCKER_CERT_PATH"); dir != "" {
		e.Cert = filepath.Join(dir, "cert.pem")
		e.Key = filepath.Join(dir, "key.pem")
		if getenv("DOCKER_TLS_VERIFY") != "" {
			e.CACert = filepath.Join(dir, "ca.pem")
		}
	}
	return e
}
