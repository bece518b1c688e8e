package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/molt-dev/molt/targets/docker/dockertest"
)

// recipeVars put the test's names in place of the README's: sub replaces
// parts of a command ("$FLEET", "127.0.0.1:7070", ...), then words are
// replaced whole (the container's name "molt", the image "molt:latest").
// The container and the volume are removed when the test ends, and the
// container's log is logged when it failed.
type recipeVars struct {
	sub               map[string]string
	container, volume string
	image             string
}

func newRecipeVars(t *testing.T, image string) *recipeVars {
	t.Helper()
	n := "molt-test-image-" + dockertest.Token(4)
	v := &recipeVars{sub: map[string]string{}, container: n, volume: n + "-state", image: image}
	v.sub["molt-state"] = v.volume
	t.Cleanup(func() { exec.Command("docker", "volume", "rm", "-f", v.volume).Run() })
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := exec.Command("docker", "logs", v.container).CombinedOutput(); err == nil {
				t.Logf("docker logs %s:\n%s", v.container, out)
			}
		}
		exec.Command("docker", "rm", "-f", "-v", v.container).Run()
	})
	return v
}

// args returns the arguments of docker for a README command.
func (v *recipeVars) args(t *testing.T, command string) []string {
	t.Helper()
	var pairs []string
	for old, repl := range v.sub {
		if strings.ContainsAny(repl, " \t\"'") {
			t.Fatalf("%q cannot stand in for %s in a command split at spaces", repl, old)
		}
		pairs = append(pairs, `"`+old+`"`, repl, old, repl)
	}
	words := strings.Fields(strings.NewReplacer(pairs...).Replace(command))
	if len(words) == 0 || words[0] != "docker" {
		t.Fatalf("not a docker command: %s", command)
	}
	for i, w := range words {
		switch w {
		case "molt":
			words[i] = v.container
		case "molt:latest":
			words[i] = v.image
		}
	}
	return words[1:]
}

// readmeSection is what TestImage reads in README.md's "## Docker"
// section: its shell commands (continuation lines joined, comments cut,
// spaces collapsed) and its example fleet (the first cue block).
type readmeSection struct {
	commands map[string]bool
	fleet    string
}

func readmeDocker(t *testing.T) readmeSection {
	t.Helper()
	section := readmeDockerText(t)
	r := readmeSection{commands: map[string]bool{}}
	var block []string
	lang, in := "", false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case !in && strings.HasPrefix(line, "```"):
			lang, in, block = strings.TrimPrefix(line, "```"), true, nil
		case in && line == "```":
			in = false
			if lang == "cue" && r.fleet == "" {
				r.fleet = strings.Join(block, "\n") + "\n"
			}
		case in && lang == "sh":
			if line, _, _ = strings.Cut(line, " #"); len(block) > 0 && strings.HasSuffix(block[len(block)-1], `\`) {
				block[len(block)-1] = strings.TrimSuffix(block[len(block)-1], `\`) + " " + line
			} else {
				block = append(block, line)
			}
			if cmd := block[len(block)-1]; !strings.HasSuffix(cmd, `\`) {
				r.commands[strings.Join(strings.Fields(cmd), " ")] = true
			}
		case in:
			block = append(block, line)
		}
	}
	if r.fleet == "" {
		t.Fatal("README.md's Docker section has no example fleet (a cue block)")
	}
	return r
}

// readmeDockerText returns the text of README.md's "## Docker" section.
func readmeDockerText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Docker\n")
	if !ok {
		t.Fatal(`README.md has no "## Docker" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	return section
}
