package docker

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/molt-dev/molt/targets"
)

// maxDriftPaths bounds how many changed paths a drift report names.
const maxDriftPaths = 5

// Drift returns "" when the container of inst is as molt created it, else
// what changed: the image it runs is not the one in LabelImage; its
// configuration no longer hashes to LabelConfig (docker update, docker
// network connect, ...); or, for a container whose root file system is
// writable, its file system differs from the image ("file system changed:
// /x added, /etc changed"), not counting the mount points of its tmpfs
// and volumes. A container that is gone has not drifted (List no longer
// reports it). It inspects and has no side effects; a container without
// molt's labels is an error wrapping ErrNotMolt.
func (t *Target) Drift(ctx context.Context, inst targets.Instance) (string, error) {
	e, c, err := t.lookup(ctx, inst.ID)
	if err != nil {
		return "", fmt.Errorf("drift of %s: %w", inst.ID, err)
	}
	if e == nil {
		return "", nil
	}
	labels := c.Config.Labels
	if want := labels[LabelImage]; c.Image != want {
		return fmt.Sprintf("image changed: runs %s, was created from %s", c.Image, want), nil
	}
	_, img, err := t.image(ctx, e, c.Image, false)
	if err != nil {
		return "", fmt.Errorf("drift of %s: %w", inst.ID, err)
	}
	if got, want := inspectFingerprints(c, img), labels[LabelConfig]; !slices.Contains(got, want) {
		return fmt.Sprintf("configuration changed: hashes to %s, was created as %s", got[0], want), nil
	}
	if c.HostConfig != nil && c.HostConfig.ReadonlyRootfs {
		return "", nil
	}
	sctx, cancel := t.short(ctx)
	defer cancel()
	diff, err := e.api.ContainerDiff(sctx, c.ID, client.ContainerDiffOptions{})
	if notFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("drift of %s: diff on engine %s: %w", inst.ID, e.Name, err)
	}
	changes := diff.Changes
	if isPodman(c.Config) {
		// Podman makes /etc in every container, for the hosts,
		// hostname and resolv.conf it mounts there.
		changes = slices.DeleteFunc(slices.Clone(changes), func(ch container.FilesystemChange) bool {
			return ch.Kind == container.ChangeAdd && ch.Path == "/etc"
		})
	}
	if what := describeChanges(changes, mountPoints(c)); what != "" {
		return "file system changed: " + what, nil
	}
	return "", nil
}

// mountPoints lists where tmpfs and volumes are mounted in container c.
func mountPoints(c container.InspectResponse) []string {
	var out []string
	if c.HostConfig != nil {
		for p := range c.HostConfig.Tmpfs {
			out = append(out, path.Clean(p))
		}
	}
	for _, m := range c.Mounts {
		out = append(out, path.Clean(m.Destination))
	}
	return out
}

// describeChanges names the changes of a container's file system, leaving
// out those that the engine makes itself (a mount point and the
// directories above it) and directories that are listed only because
// something below them is. It returns "" when nothing is left.
func describeChanges(changes []container.FilesystemChange, mounts []string) string {
	var kept []container.FilesystemChange
	for _, ch := range changes {
		p := path.Clean(ch.Path)
		if ch.Kind != container.ChangeDelete && slices.ContainsFunc(mounts, func(m string) bool { return within(m, p) }) {
			continue // a mount point, or a directory on the way to one
		}
		kept = append(kept, container.FilesystemChange{Kind: ch.Kind, Path: p})
	}
	var words []string
	for _, ch := range kept {
		if ch.Kind != container.ChangeDelete && slices.ContainsFunc(kept, func(o container.FilesystemChange) bool {
			return o.Path != ch.Path && within(o.Path, ch.Path)
		}) {
			continue
		}
		words = append(words, ch.Path+" "+changeWord(ch.Kind))
	}
	if len(words) == 0 {
		return ""
	}
	slices.Sort(words)
	if len(words) > maxDriftPaths {
		return fmt.Sprintf("%s, and %d more", strings.Join(words[:maxDriftPaths], ", "), len(words)-maxDriftPaths)
	}
	return strings.Join(words, ", ")
}

// within reports whether path p is dir or below it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

func changeWord(k container.ChangeType) string {
	switch k {
	case container.ChangeAdd:
		return "added"
	case container.ChangeDelete:
		return "deleted"
	}
	return "changed"
}
