package docker_test

import (
	"os"
	"testing"

	"github.com/molt-dev/molt/targets/docker/dockertest"
)

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }
