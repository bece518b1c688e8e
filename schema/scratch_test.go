package schema

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

func TestScratch(t *testing.T) {
	b, err := os.ReadFile(os.Getenv("SCRATCH"))
	if err != nil {
		t.Skip()
	}
	for _, c := range strings.Split(string(b), "\n#---\n") {
		fmt.Println("=====")
		fmt.Println(c)
		fmt.Println("-----")
		f, err := Load(fstest.MapFS{"fleet.cue": {Data: []byte(c)}}, ".")
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("OK %+v\n", f)
	}
}
