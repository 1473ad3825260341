// A command-line checker built on porcupine (github.com/anishathalye/porcupine), the reference
// bench/checker_files.ts times `distkit check FILE...` against: one process checks each file
// named on its command line and prints one line per file, like `distkit check` given several.
//
// The models are the two porcupine's own tests use for these histories, written here from their
// semantics (the files' README, ../shared/data/histories/README.md): a compare-and-set register
// for the Jepsen etcd logs (a read that timed out, and an operation still open at the end, have an
// unknown outcome) and a string register per key for the kv files (get, put, append; partitioned
// by key). Events are read by splitting lines into fields, not by regular expressions, so reading
// costs porcupine as little as it can.
//
// Build (Go 1.16 or later; porcupine has no dependencies), with porcupine's source in $SRC:
//
//	mkdir /tmp/porc && cp bench/porcupine/main.go /tmp/porc && cd /tmp/porc
//	go mod init porcupine-check
//	go mod edit -require github.com/anishathalye/porcupine@v0.0.0 \
//	  -replace github.com/anishathalye/porcupine=$SRC
//	go build -o porcupine-check .
//
// (bench/checker_files.ts --porcupine-src $SRC does the same.) Run:
//
//	./porcupine-check [-kv-map] FILE...
//
// (-kv-map: the kv files are checked as one map-valued state, without partitions.)
//
// Output: "FILE: linearizable|not linearizable|unknown (N operations, T ms)" per file, then
// "total: T ms" on stderr; the exit code is 0 when all are linearizable, 1 when one is not, 3
// when one is unknown, 2 when a file cannot be read or has no events.
package main

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The register's value before any write: no value (nil in the logs).
const absent = -1 << 40

type casInput struct {
	op       byte // 'r' read, 'w' write, 'c' compare-and-set
	from, to int  // write: to; cas: from, to
}

type casOutput struct {
	ok      bool // cas: it swapped
	value   int  // read: the value seen (absent for nil)
	unknown bool // the outcome is not known
}

var casModel = porcupine.Model{
	Init: func() interface{} { return absent },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st := state.(int)
		in := input.(casInput)
		out := output.(casOutput)
		switch in.op {
		case 'r':
			return out.unknown || out.value == st, st
		case 'w':
			return true, in.to
		default:
			swapped := in.from == st
			next := st
			if swapped {
				next = in.to
			}
			return out.unknown || out.ok == swapped, next
		}
	},
}

type kvInput struct {
	op         byte // 'g' get, 'p' put, 'a' append
	key, value string
}

type kvOutput struct{ value string }

var kvModel = porcupine.Model{
	PartitionEvent: func(history []porcupine.Event) [][]porcupine.Event {
		byKey := map[string][]porcupine.Event{}
		keyOf := map[int]string{}
		for _, e := range history {
			if e.Kind == porcupine.CallEvent {
				keyOf[e.Id] = e.Value.(kvInput).key
			}
			k := keyOf[e.Id]
			byKey[k] = append(byKey[k], e)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([][]porcupine.Event, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, byKey[k])
		}
		return parts
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st := state.(string)
		in := input.(kvInput)
		switch in.op {
		case 'g':
			return output.(kvOutput).value == st, st
		case 'p':
			return true, in.value
		default:
			return true, st + in.value
		}
	},
	Hash: func(state interface{}) uint64 {
		h := fnv.New64a()
		h.Write([]byte(state.(string)))
		return h.Sum64()
	},
}

// kvMapModel is kvModel without partitions: one state for all keys (a map, copied on each
// write), the "kv-map" row of BENCHMARKS.md; chosen with -kv-map.
var kvMapModel = porcupine.Model{
	Init: func() interface{} { return map[string]string{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st := state.(map[string]string)
		in := input.(kvInput)
		if in.op == 'g' {
			return output.(kvOutput).value == st[in.key], st
		}
		next := make(map[string]string, len(st)+1)
		for k, v := range st {
			next[k] = v
		}
		if in.op == 'p' {
			next[in.key] = in.value
		} else {
			next[in.key] = st[in.key] + in.value
		}
		return true, next
	},
	Equal: func(a, b interface{}) bool {
		x, y := a.(map[string]string), b.(map[string]string)
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || w != v {
				return false
			}
		}
		return true
	},
	Hash: func(state interface{}) uint64 {
		// Each pair hashed alone and combined by XOR: the same for any iteration order.
		var sum uint64
		for k, v := range state.(map[string]string) {
			h := fnv.New64a()
			h.Write([]byte(k))
			h.Write([]byte{0})
			h.Write([]byte(v))
			sum ^= h.Sum64()
		}
		return sum
	},
}

// history collects events, matching each return to its process's open call.
type history struct {
	events []porcupine.Event
	open   map[int]int // process -> id of its open call
	next   int
}

func (h *history) call(process int, input interface{}) {
	h.events = append(h.events, porcupine.Event{ClientId: process, Kind: porcupine.CallEvent, Value: input, Id: h.next})
	h.open[process] = h.next
	h.next++
}

func (h *history) ret(process int, output interface{}) {
	id, ok := h.open[process]
	if !ok {
		return
	}
	delete(h.open, process)
	h.events = append(h.events, porcupine.Event{ClientId: process, Kind: porcupine.ReturnEvent, Value: output, Id: id})
}

// closeOpen returns every call still open with `output` (an unknown outcome).
func (h *history) closeOpen(output interface{}) {
	procs := make([]int, 0, len(h.open))
	for p := range h.open {
		procs = append(procs, p)
	}
	sort.Ints(procs)
	for _, p := range procs {
		h.ret(p, output)
	}
}

func atoi(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// jepsenLine reads "INFO jepsen.util - PROCESS :TYPE :F VALUE" (fields split on any whitespace).
func jepsenLine(h *history, f []string) {
	if len(f) < 7 || f[1] != "jepsen.util" {
		return
	}
	proc, ok := atoi(f[3])
	if !ok {
		return
	}
	kind, fn, rest := f[4], f[5], strings.Join(f[6:], " ")
	pair := func() (int, int, bool) {
		s := strings.TrimSuffix(strings.TrimPrefix(rest, "["), "]")
		parts := strings.Fields(s)
		if len(parts) != 2 {
			return 0, 0, false
		}
		a, okA := atoi(parts[0])
		b, okB := atoi(parts[1])
		return a, b, okA && okB
	}
	switch {
	case kind == ":invoke" && fn == ":read" && rest == "nil":
		h.call(proc, casInput{op: 'r'})
	case kind == ":invoke" && fn == ":write":
		if v, ok := atoi(rest); ok {
			h.call(proc, casInput{op: 'w', to: v})
		}
	case kind == ":invoke" && fn == ":cas":
		if a, b, ok := pair(); ok {
			h.call(proc, casInput{op: 'c', from: a, to: b})
		}
	case kind == ":ok" && fn == ":read":
		if rest == "nil" {
			h.ret(proc, casOutput{value: absent})
		} else if v, ok := atoi(rest); ok {
			h.ret(proc, casOutput{value: v})
		}
	case kind == ":ok" && fn == ":write":
		h.ret(proc, casOutput{})
	case (kind == ":ok" || kind == ":fail") && fn == ":cas":
		if _, _, ok := pair(); ok {
			h.ret(proc, casOutput{ok: kind == ":ok"})
		}
	case kind == ":fail" && fn == ":read" && rest == ":timed-out":
		h.ret(proc, casOutput{unknown: true})
	}
	// :info lines leave the call open: its outcome is unknown until the end.
}

// ednString reads the quoted string after `field` in an EDN map line, or reports it absent.
func ednString(line, field string) (string, bool) {
	i := strings.Index(line, field+` "`)
	if i < 0 {
		return "", false
	}
	s := line[i+len(field)+2:]
	j := strings.IndexByte(s, '"')
	if j < 0 {
		return "", false
	}
	return s[:j], true
}

func ednWord(line, field string) string {
	i := strings.Index(line, field+" ")
	if i < 0 {
		return ""
	}
	s := line[i+len(field)+1:]
	if j := strings.IndexAny(s, ",}"); j >= 0 {
		s = s[:j]
	}
	return s
}

// kvLine reads `{:process P, :type :invoke|:ok, :f :get|:put|:append, :key "K", :value V}`.
func kvLine(h *history, line string) {
	proc, ok := atoi(ednWord(line, ":process"))
	if !ok {
		return
	}
	kind, fn := ednWord(line, ":type"), ednWord(line, ":f")
	key, _ := ednString(line, ":key")
	value, hasValue := ednString(line, ":value")
	switch kind {
	case ":invoke":
		switch fn {
		case ":get":
			h.call(proc, kvInput{op: 'g', key: key})
		case ":put":
			h.call(proc, kvInput{op: 'p', key: key, value: value})
		case ":append":
			h.call(proc, kvInput{op: 'a', key: key, value: value})
		}
	case ":ok":
		if fn == ":get" && !hasValue {
			value = "" // nil: the key is absent, read as ""
		}
		h.ret(proc, kvOutput{value: value})
	}
}

func parse(path string) (porcupine.Model, []porcupine.Event, error) {
	file, err := os.Open(path)
	if err != nil {
		return porcupine.Model{}, nil, err
	}
	defer file.Close()
	h := &history{open: map[int]int{}}
	model := porcupine.Model{}
	jepsen := false
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 1<<30)
	for scanner.Scan() {
		line := scanner.Text()
		switch {
		case strings.HasPrefix(line, "{:process"):
			model = kvModel
			kvLine(h, line)
		case strings.Contains(line, "jepsen.util"):
			model = casModel
			jepsen = true
			jepsenLine(h, strings.Fields(line))
		}
	}
	if err := scanner.Err(); err != nil {
		return model, nil, err
	}
	if len(h.events) == 0 {
		return model, nil, fmt.Errorf("no events read")
	}
	if jepsen {
		h.closeOpen(casOutput{unknown: true})
	} else {
		h.closeOpen(kvOutput{})
	}
	return model, h.events, nil
}

func main() {
	worst := 0
	start := time.Now()
	files, kvMap := os.Args[1:], false
	if len(files) > 0 && files[0] == "-kv-map" {
		files, kvMap = files[1:], true
	}
	for _, path := range files {
		t0 := time.Now()
		model, events, err := parse(path)
		if kvMap && model.PartitionEvent != nil {
			model = kvMapModel
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: cannot read: %v\n", path, err)
			if worst < 2 {
				worst = 2
			}
			continue
		}
		res := porcupine.CheckEventsTimeout(model, events, 0)
		verdict, code := "linearizable", 0
		switch res {
		case porcupine.Illegal:
			verdict, code = "not linearizable", 1
		case porcupine.Unknown:
			verdict, code = "unknown", 3
		}
		if code > worst {
			worst = code
		}
		ms := float64(time.Since(t0).Microseconds()) / 1000
		fmt.Printf("%s: %s (%d operations, %.2f ms)\n", path, verdict, len(events)/2, ms)
	}
	fmt.Fprintf(os.Stderr, "total: %.2f ms\n", float64(time.Since(start).Microseconds())/1000)
	os.Exit(worst)
}
