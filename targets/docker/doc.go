// Package docker is the target that runs instances as containers on one or
// more Docker Engines, through the moby API client with the API version
// negotiated per engine (API 1.40 and later: Debian's Docker 20.10 as well
// as current engines).
//
// Containers are immutable. A service's image reference is resolved to the
// image's content id (Resolve), that id goes into the spec hash, and the
// container is created from exactly that id, never from the tag: a tag
// moved to another image yields another hash, and so a replacement.
//
// Every container molt creates carries molt's labels (see the Label
// constants); they are the only record. List finds containers by label
// filter, never by name, and nothing without molt's labels is ever listed,
// inspected for drift or retired. An instance id is "<engine>/<container
// id, 12 hex digits>".
//
// Each named port of a service is the container port of that number,
// published on the engine's HostIP (127.0.0.1 by default) at a port the
// engine chooses; Instance.Endpoints name those host ports. A container sees
// the service's env, PORT_<NAME> and PORT (the container ports), and
// MOLT_FLEET, MOLT_SERVICE, MOLT_REVISION and MOLT_ENGINE. It does not see
// MOLT_INSTANCE: the engine picks the container id once the environment is
// fixed (the container's HOSTNAME is its short id).
//
// The package deliberately does not restart containers (molt replaces dead
// instances), does not build or push images, does not manage networks or
// volumes beyond connecting to networks that exist and removing a
// container's anonymous volumes, and does not health-check instances.
package docker
