// The HTTP load generator of bench/kv_load.ts, again in Go (standard library only), to check
// that the Deno driver is not what limits a run: the same puts (64-byte values, distinct
// 16-byte keys), the same loops, the same counting. bench/kv_vs_etcd.ts builds it when `go` is
// on PATH:
//
//	GO111MODULE=off go build -o kv_http_load bench/kv_http_load.go
//	./kv_http_load -system etcd|distkit-http -url http://127.0.0.1:2379 -clients 64 -seconds 5
//
// It prints "timed" when the timed window opens, then one JSON line with the result (and the
// CPU time it used in the window, cpuMs).
package main

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cpuMs is the CPU time (user + system) this process has used, in milliseconds.
func cpuMs() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}

const value = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func main() {
	system := flag.String("system", "etcd", "etcd or distkit-http")
	target := flag.String("url", "", "the leader's client URL")
	clients := flag.Int("clients", 16, "concurrent clients")
	seconds := flag.Float64("seconds", 5, "timed seconds")
	warmup := flag.Float64("warmup", 1, "untimed seconds first")
	prefix := flag.String("prefix", "go", "key prefix, at most 5 characters")
	flag.Parse()
	if (*system != "etcd" && *system != "distkit-http") || *target == "" || len(*prefix) > 5 {
		flag.Usage()
		os.Exit(2)
	}
	transport := &http.Transport{
		MaxIdleConnsPerHost: *clients,
		MaxConnsPerHost:     *clients,
		DisableCompression:  true,
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   10 * time.Second,
		// A distkit follower answers 307 to the leader; Go follows it with the body.
	}
	valueBase64 := base64.StdEncoding.EncodeToString([]byte(value))
	var mu sync.Mutex
	counter := 0
	nextKey := func() string {
		mu.Lock()
		n := counter
		counter++
		mu.Unlock()
		p := *prefix + "-"
		return fmt.Sprintf("%s%0*d", p, 16-len(p), n)
	}
	put := func(key string) error {
		var req *http.Request
		var err error
		if *system == "etcd" {
			body := `{"key":"` + base64.StdEncoding.EncodeToString([]byte(key)) + `","value":"` +
				valueBase64 + `"}`
			req, err = http.NewRequest("POST", *target+"/v3/kv/put", strings.NewReader(body))
			if err == nil {
				req.Header.Set("content-type", "application/json")
			}
		} else {
			req, err = http.NewRequest("PUT", *target+"/kv/"+url.PathEscape(key),
				strings.NewReader(value))
			if err == nil {
				req.Header.Set("content-type", "text/plain")
			}
		}
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if *system == "etcd" && (resp.StatusCode != 200 || !strings.Contains(string(b), `"revision"`)) {
			return fmt.Errorf("etcd: HTTP %d %.120s", resp.StatusCode, b)
		}
		if *system == "distkit-http" && resp.StatusCode != 204 {
			return fmt.Errorf("distkit: HTTP %d %.120s", resp.StatusCode, b)
		}
		return nil
	}
	errors := 0
	firstError := ""
	phase := func(d time.Duration, record bool) []float64 {
		end := time.Now().Add(d)
		var wg sync.WaitGroup
		var lmu sync.Mutex
		var all []float64
		for w := 0; w < *clients; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []float64
				for time.Now().Before(end) {
					t0 := time.Now()
					if err := put(nextKey()); err != nil {
						lmu.Lock()
						errors++
						if firstError == "" {
							firstError = err.Error()
						}
						lmu.Unlock()
						time.Sleep(10 * time.Millisecond)
						continue
					}
					t1 := time.Now()
					if record && !t1.After(end) {
						mine = append(mine, float64(t1.Sub(t0).Nanoseconds())/1e6)
					}
				}
				lmu.Lock()
				all = append(all, mine...)
				lmu.Unlock()
			}()
		}
		wg.Wait()
		return all
	}
	phase(time.Duration(*warmup*float64(time.Second)), false)
	errors = 0
	firstError = ""
	fmt.Println("timed")
	cpu0 := cpuMs()
	lat := phase(time.Duration(*seconds*float64(time.Second)), true)
	cpu := cpuMs() - cpu0
	sort.Float64s(lat)
	quantile := func(q float64) float64 {
		if len(lat) == 0 {
			return 0 // no puts: ops says so (JSON has no NaN)
		}
		rank := int(math.Ceil(q * float64(len(lat))))
		if rank < 1 {
			rank = 1
		}
		if rank > len(lat) {
			rank = len(lat)
		}
		return lat[rank-1]
	}
	result := map[string]interface{}{
		"ops": len(lat), "seconds": *seconds, "perSecond": float64(len(lat)) / *seconds,
		"p50": quantile(0.5), "p99": quantile(0.99), "errors": errors, "cpuMs": cpu,
	}
	if firstError != "" {
		result["firstError"] = firstError
	}
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
}
