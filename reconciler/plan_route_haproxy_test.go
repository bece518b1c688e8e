package reconciler

import (
	"strings"
	"testing"

	"github.com/molt-dev/molt/schema"
	"github.com/molt-dev/molt/targets"
)

// TestBuildRouteHAProxy: a service exposed through a HAProxy backend gets
// a route naming the backend and no listen address, with its backends as
// a router route has them; a change of the backend is a change of the
// route; the plan says where the traffic goes.
func TestBuildRouteHAProxy(t *testing.T) {
	inst := Observed{Instance: targets.Instance{ID: "web-1", State: targets.Running,
		Labels:    targets.Labels{Service: "web", SpecHash: "h1"},
		Endpoints: map[string]string{"http": "127.0.0.1:4000"}}}
	tr := Traffic{Active: "h1", Instances: []string{"web-1"}}
	rt := buildRoute("web", &schema.Expose{HAProxy: "be_web", Port: "http"}, tr, []Observed{inst})
	if rt.HAProxy != "be_web" || rt.Listen != "" {
		t.Errorf("route HAProxy %q, Listen %q; want be_web and none", rt.HAProxy, rt.Listen)
	}
	if len(rt.Backends) != 1 || rt.Backends[0].Addr != "127.0.0.1:4000" || rt.Backends[0].Generation != "h1" {
		t.Errorf("backends %+v", rt.Backends)
	}
	other := rt
	other.HAProxy = "be_other"
	if routeEqual(rt, other) {
		t.Error("routes to two HAProxy backends are equal")
	}
	if emptyRoute(targets.Route{Service: "web", HAProxy: "be_web"}) {
		t.Error("a route to a HAProxy backend counts as removed")
	}
	line := trafficLine(ServicePlan{Service: "web", Route: &rt})
	if !strings.Contains(line, "traffic to 1 instance(s)") || !strings.HasSuffix(line, "through HAProxy backend be_web") {
		t.Errorf("traffic line %q", line)
	}
}
