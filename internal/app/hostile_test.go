package app

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/testenv"
)

// The hostile-client test: thousands of generated requests, deterministic
// for a seed, against the real program in both modes. Every request is
// built to be refused: no write may succeed, no answer may be a 5xx, no
// handler may panic, and every error is in the JSON error shape.
//
//	FS_HOSTILE_SEED=42 FS_HOSTILE_N=50000 go test -run TestHostileClients ./internal/app/
//
// runs it longer, or replays a seed. Requests with wrong tokens and expired
// JWTs belong to the authentication layer and join the generators there.

// hostileReq is one generated request: an HTTP request, or raw bytes for
// what an HTTP client library refuses to send.
type hostileReq struct {
	kind   string
	method string
	path   string
	body   []byte
	header map[string]string
	raw    []byte
}

// builtins are the built-in groups: a PUT or DELETE of one is always 409.
var builtins = []string{"movie_basic", "movie_temporal", "movie_statistical", "movie_text", "movie_interaction", "movie_audience"}

// hostile strings: SQL, path tricks, control and format characters.
var nastyStrings = []string{
	"' OR 1=1 --", "\"; DROP TABLE feature_groups; --", "Robert'); DROP TABLE feature_rows;--", "1; SELECT pg_sleep(10)",
	"../../etc/passwd", "..%2f..%2f", "%00", "\\u0000", "${jndi:ldap://x}", "<script>alert(1)</script>", "{{7*7}}",
	"\u202e\u0000", "\ufeff", "a\tb", "\r\nX-Injected: 1", strings.Repeat("A", 300), "null", "NaN", "-0", "𝔘𝔫𝔦",
}

// invalidMovie has three independent defects (id 0, an empty title, a vote
// average of 11): one mutation cannot make it valid.
const invalidMovie = `{"id":0,"title":"","vote_average":11,"vote_count":3,"release_date":"2020-01-01","genre_ids":[28,12]}`

// invalidRows names a feature no built-in group has: still unknown after
// any one mutation.
const invalidRows = `[{"entity_id":"e1","event_time":"2025-01-01T00:00:00Z","values":{"zz_nope":1,"popularity":2.5}}]`

const onlineRead = `{"entities":{"movie_id":[1,2,3]},"features":["movie_basic:popularity","movie_text:title_length"],"full_feature_names":true}`

// mutate applies exactly one random mutation to a JSON document.
func mutate(rng *rand.Rand, doc string) []byte {
	b := []byte(doc)
	switch rng.IntN(8) {
	case 0: // truncate
		return b[:rng.IntN(len(b))]
	case 1: // flip a byte
		i := rng.IntN(len(b))
		b[i] ^= byte(1 << rng.IntN(8))
		return b
	case 2: // invalid UTF-8 inside a string
		if i := bytes.IndexByte(b, '"'); i >= 0 {
			return slices.Concat(b[:i+1], []byte{0xff, 0xfe, 0xc3}, b[i+1:])
		}
		return append(b, 0xff)
	case 3: // a NUL escape inside a string
		if i := bytes.LastIndexByte(b, '"'); i > 0 {
			return slices.Concat(b[:i], []byte(`\u0000`), b[i:])
		}
		return b
	case 4: // a lone surrogate
		if i := bytes.LastIndexByte(b, '"'); i > 0 {
			return slices.Concat(b[:i], []byte(`\ud83d`), b[i:])
		}
		return b
	case 5: // duplicate the first key
		if i := bytes.IndexByte(b, '{'); i >= 0 {
			return slices.Concat(b[:i+1], []byte(`"dup":1,"dup":2,`), b[i+1:])
		}
		return b
	case 6: // upper-case every key
		return bytes.ToUpper(b)
	default: // trailing garbage
		return append(b, []byte(` {"more":`)...)
	}
}

// hugeNumbers are numbers no feature can hold.
var hugeNumbers = []string{"1e999999", "-1e999999", "123456789012345678901234567890", "1e-400", "4.9e-324", "-0.0e-0",
	"9223372036854775808", "0.1e1000000000", "1" + strings.Repeat("0", 5000)}

// nested returns a document nested depth levels deep.
func nested(rng *rand.Rand, depth int) []byte {
	open, close := "[", "]"
	if rng.IntN(2) == 0 {
		open, close = `{"a":`, "}"
	}
	return []byte(strings.Repeat(open, depth) + "1" + strings.Repeat(close, depth))
}

// pathTricks are request targets meant to confuse routing or storage.
func pathTrick(rng *rand.Rand) string {
	g := builtins[rng.IntN(len(builtins))]
	n := nastyStrings[rng.IntN(len(nastyStrings))]
	switch rng.IntN(10) {
	case 0:
		return "/v1/feature-groups/" + g + "/entities/%FF%FE"
	case 1:
		return "/v1/feature-groups/" + g + "/entities/a%00b"
	case 2:
		return "/v1/feature-groups/" + g + "/entities/" + urlEscape(n)
	case 3:
		return "/v1/feature-groups/../feature-groups/" + g
	case 4:
		return "/v1/feature-groups/" + g + "/entities/1?features=" + urlEscape(n) + "&as_of=" + urlEscape(n)
	case 5:
		return "/v1//feature-groups//" + g
	case 6:
		return "/v1/feature-groups/%2e%2e/%2e%2e/metrics"
	case 7:
		return "/v1/feature-groups/" + g + "/entities/" + strings.Repeat("x", 300)
	case 8:
		return "/v1/feature-groups/" + urlEscape(n)
	}
	return "/v1/feature-groups/" + g + "/entities/1?as_of=9999-12-31T23:59:59Z&features=%C3%28"
}

func urlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// generate makes the i-th request.
func generate(rng *rand.Rand, maxBody int) hostileReq {
	g := builtins[rng.IntN(len(builtins))]
	n := nastyStrings[rng.IntN(len(nastyStrings))]
	write := func(kind string, path string, body []byte) hostileReq {
		method := "POST"
		if strings.HasPrefix(path, "/v1/feature-groups/") && !strings.HasSuffix(path, "/rows") {
			method = "PUT"
		}
		h := hostileReq{kind: kind, method: method, path: path, body: body, header: map[string]string{"Content-Type": "application/json"}}
		if rng.IntN(4) == 0 {
			h.header["Idempotency-Key"] = strconv.Itoa(rng.IntN(20))
		}
		return h
	}
	switch k := rng.IntN(16); k {
	case 0:
		return write("malformed JSON", "/v1/movies", mutate(rng, invalidMovie))
	case 1:
		return write("malformed JSON", "/v1/feature-groups/"+g+"/rows", mutate(rng, invalidRows))
	case 2:
		return write("malformed JSON", "/v1/feature-groups/"+g, mutate(rng, `{"entity_key":"movie_id","features":[{"name":"x","type":"int64"}]}`))
	case 3:
		return hostileReq{kind: "malformed JSON", method: "POST", path: "/get-online-features", body: mutate(rng, onlineRead)}
	case 4:
		return write("deeply nested JSON", []string{"/v1/movies", "/get-online-features", "/v1/feature-groups/" + g + "/rows"}[rng.IntN(3)],
			nested(rng, []int{63, 65, 1000, 100000}[rng.IntN(4)]))
	case 5:
		num := hugeNumbers[rng.IntN(len(hugeNumbers))]
		return write("huge numbers", "/v1/feature-groups/"+g+"/rows",
			[]byte(`[{"entity_id":`+num+`,"values":{"zz_nope":`+num+`,"vote_count":`+num+`}}]`))
	case 6:
		num := hugeNumbers[rng.IntN(len(hugeNumbers))]
		return write("huge numbers", "/v1/movies", []byte(`{"id":`+num+`,"title":"","vote_count":`+num+`,"popularity":`+num+`}`))
	case 7:
		return hostileReq{kind: "path tricks", method: []string{"GET", "HEAD", "DELETE"}[rng.IntN(3)], path: pathTrick(rng)}
	case 8:
		bad := []string{"users; DROP TABLE feature_groups", "a' OR '1'='1", "Users", "_x", "x--y", "none", "g$(id)", strings.Repeat("a", 64)}[rng.IntN(8)]
		return write("SQL-looking names", "/v1/feature-groups/"+urlEscape(bad),
			[]byte(`{"entity_key":"`+strings.ReplaceAll(n, `"`, `'`)+`","features":[{"name":"x; DROP TABLE t","type":"int64"}]}`))
	case 9:
		return hostileReq{kind: "SQL-looking names", method: "POST", path: "/get-online-features",
			body: []byte(`{"entities":{"movie_id":[` + strconv.Quote(n) + `]},"features":["movie_basic:` + strings.ReplaceAll(n, `"`, "") + `"]}`)}
	case 10:
		return write("wrong types", "/v1/feature-groups/"+g+"/rows", []byte([]string{
			`{"entity_id":"e","values":{}}`, `[{"entity_id":{"a":1},"values":{"zz_nope":1}}]`, `[{"entity_id":"e","values":[1,2]}]`,
			`[{"entity_id":"e","event_time":12345,"values":{"zz_nope":1}}]`, `[null]`, `"rows"`, `[{"entity_id":true,"values":null}]`,
		}[rng.IntN(7)]))
	case 11:
		return write("wrong types", "/v1/movies", []byte([]string{
			`{"id":"1","title":7}`, `[1,2,3]`, `{"results":"x","page":1}`, `{"movies":{"id":1}}`, `true`, `{"id":1.5,"title":["t"]}`,
		}[rng.IntN(6)]))
	case 12:
		size := maxBody + 1 + rng.IntN(maxBody)
		h := write("oversized bodies", "/v1/movies", bytes.Repeat([]byte(" "), size))
		if rng.IntN(2) == 0 {
			h.header["X-Chunked"] = "1" // sent without a length
		}
		return h
	case 13:
		return hostileReq{kind: "bad request lines", raw: []byte([]string{
			"GET /%ZZ HTTP/1.1\r\nHost: x\r\n\r\n",
			"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
			"GET /" + strings.Repeat("a", 70<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("b", 40<<10) + "\r\n\r\n",
			"POST /v1/movies HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
			"POST /v1/movies HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
			"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
			"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
		}[rng.IntN(8)])}
	case 14:
		return write("strict JSON", "/v1/feature-groups/"+g+"/rows", []byte([]string{
			`[{"entity_id":"e","values":{"zz_nope":1,"zz_nope":2}}]`, `[{"Entity_ID":"e","values":{"zz_nope":1}}]`,
			"[{\"entity_id\":\"\xff\",\"values\":{\"zz_nope\":1}}]", `[{"entity_id":"e\u0000","values":{"zz_nope":1}}]`,
			`[{"entity_id":"e","event_time":"0000-01-01T00:00:00Z","values":{"zz_nope":1}}]`,
		}[rng.IntN(5)]))
	}
	methods := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "BREW"}
	targets := []string{"/", "/v1", "/v1/feature-groups/" + g, "/v1/movies", "/metrics", "/health", "/v1/recompute/x", "/get-online-features"}
	m := methods[rng.IntN(len(methods))]
	t := targets[rng.IntN(len(targets))]
	if m == "DELETE" && strings.HasPrefix(t, "/v1/feature-groups/") || m == "PUT" || m == "POST" && t == "/v1/movies" {
		return hostileReq{kind: "random methods", method: m, path: t, body: mutate(rng, invalidMovie)}
	}
	return hostileReq{kind: "random methods", method: m, path: t}
}

// outcome is what one request got.
type outcome struct {
	status int
	json   bool // the body is a JSON object with a code (errors), or the request is not an error
	err    error
}

func send(client *http.Client, base string, h hostileReq) outcome {
	if h.raw != nil {
		return sendRaw(strings.TrimPrefix(base, "http://"), h.raw)
	}
	var body io.Reader
	if h.body != nil {
		body = bytes.NewReader(h.body)
		if h.header["X-Chunked"] != "" {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
	}
	req, err := http.NewRequest(h.method, base+h.path, body)
	if err != nil {
		// A target Go's client refuses to send: send it raw.
		return sendRaw(strings.TrimPrefix(base, "http://"), []byte(h.method+" "+h.path+" HTTP/1.1\r\nHost: x\r\n\r\n"))
	}
	if req.URL.RawPath == "" && strings.Contains(h.path, "%") {
		req.URL.Opaque = strings.SplitN(h.path, "?", 2)[0] // keep the escapes exactly as generated
	}
	for k, v := range h.header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return outcome{status: resp.StatusCode, json: isJSONError(resp, b, h.method)}
}

func sendRaw(addr string, raw []byte) outcome {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return outcome{err: err}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute)) // a guard
	if _, err := c.Write(raw); err != nil {
		return outcome{err: err}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return outcome{status: 0, json: true} // closed without an answer (a TLS hello, say)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return outcome{status: resp.StatusCode, json: isJSONError(resp, b, "GET")}
}

// isJSONError: an error answer is a JSON object with a code and a message
// (HEAD answers carry no body).
func isJSONError(resp *http.Response, b []byte, method string) bool {
	if resp.StatusCode < 400 || method == "HEAD" {
		return true
	}
	var e struct{ Code, Message string }
	return resp.Header.Get("Content-Type") == "application/json" && json.Unmarshal(b, &e) == nil && e.Code != "" && e.Message != ""
}

// written is what the store holds, as the API reports it.
func written(t *testing.T, base string) string {
	t.Helper()
	var groups, stats map[string]any
	if st := doJSON(t, "GET", base+"/v1/feature-groups", nil, &groups); st != 200 {
		t.Fatalf("list groups: %d", st)
	}
	if st := doJSON(t, "GET", base+"/v1/stats", nil, &stats); st != 200 {
		t.Fatalf("stats: %d", st)
	}
	delete(stats, "storage_bytes")
	delete(stats, "recompute")
	b, _ := json.Marshal([]any{groups, stats})
	return string(b)
}

func hostileSettings(t *testing.T) (seed uint64, n int) {
	seed, n = 20260601, 2500
	if s := os.Getenv("FS_HOSTILE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FS_HOSTILE_SEED: %v", err)
		}
		seed = v
	}
	if s := os.Getenv("FS_HOSTILE_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("FS_HOSTILE_N: %v", err)
		}
		n = v
	}
	return seed, n
}

// TestHostileClients is not parallel with the other tests: its thousands of
// requests would only make theirs slower (its two modes run together).
func TestHostileClients(t *testing.T) {
	seed, n := hostileSettings(t)
	modes := []struct {
		name string
		env  func(t *testing.T) map[string]string
	}{
		{"embedded", func(t *testing.T) map[string]string { return map[string]string{"FEATURESTORE_DATA_DIR": t.TempDir()} }},
		{"postgres", func(t *testing.T) map[string]string {
			return map[string]string{"FEATURESTORE_POSTGRES_URL": testenv.PostgresSchemaURL(t, "fs_hostile"),
				"FEATURESTORE_REDIS_URL": testenv.RedisURL(t), "FEATURESTORE_REDIS_KEY_PREFIX": fmt.Sprintf("fs_hostile_%d", time.Now().UnixNano())}
		}},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			const maxBody = 256 << 10
			base, logs, stop := startServer(t, []string{"--max-body-bytes", strconv.Itoa(maxBody), "--rate-limit", "0",
				"--read-header-timeout", "1s", "--recompute-delay", "0"}, mode.env(t))
			before := written(t, base)
			slowDone := slowClients(t, base, 8)

			rng := rand.New(rand.NewPCG(seed, 0))
			reqs := make([]hostileReq, n)
			for i := range reqs {
				reqs[i] = generate(rng, maxBody)
			}
			client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 16, MaxIdleConnsPerHost: 16}, Timeout: 2 * time.Minute}
			defer client.CloseIdleConnections()
			type tally struct{ byStatus map[int]int }
			var (
				mu       sync.Mutex
				kinds    = map[string]*tally{}
				failures []string
			)
			work := make(chan int)
			var wg sync.WaitGroup
			fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Minute}
			retried := 0
			for range 8 {
				wg.Go(func() {
					for i := range work {
						o := send(client, base, reqs[i])
						if o.err != nil && reqs[i].kind != "oversized bodies" && reqs[i].raw == nil {
							// A pooled keep-alive connection can be closed by the
							// server as the client reuses it (Go's client retries
							// that itself only for idempotent requests): send
							// once more on a new connection. Every request is
							// refused, so sending it twice is harmless; a server
							// that is really gone fails this one too.
							o = send(fresh, base, reqs[i])
							mu.Lock()
							retried++
							mu.Unlock()
						}
						mu.Lock()
						k := kinds[reqs[i].kind]
						if k == nil {
							k = &tally{byStatus: map[int]int{}}
							kinds[reqs[i].kind] = k
						}
						k.byStatus[o.status]++
						switch {
						case o.err != nil && reqs[i].kind == "oversized bodies":
							// Refused while still being sent: the server answers
							// 413 and half-closes, but closes for good if the
							// client is still sending after net/http's grace
							// period (a loaded machine), and the client then
							// sees the reset before the answer. A refusal too.
						case o.err != nil:
							failures = append(failures, fmt.Sprintf("#%d %s %s: %v", i, reqs[i].method, truncate(reqs[i].path), o.err))
						case o.status >= 500:
							failures = append(failures, fmt.Sprintf("#%d %s %s %q: %d", i, reqs[i].method, truncate(reqs[i].path), truncate(string(reqs[i].body)), o.status))
						case o.status >= 200 && o.status < 300 && reqs[i].method != "GET" && reqs[i].method != "HEAD" && reqs[i].path != "/get-online-features":
							failures = append(failures, fmt.Sprintf("#%d %s %s %q: a write succeeded (%d)", i, reqs[i].method, truncate(reqs[i].path), truncate(string(reqs[i].body)), o.status))
						case !o.json:
							failures = append(failures, fmt.Sprintf("#%d %s %s: %d is not a JSON error", i, reqs[i].method, truncate(reqs[i].path), o.status))
						}
						mu.Unlock()
					}
				})
			}
			for i := range reqs {
				work <- i
			}
			close(work)
			wg.Wait()
			<-slowDone

			total5xx := 0
			names := make([]string, 0, len(kinds))
			for name := range kinds {
				names = append(names, name)
			}
			slices.Sort(names)
			for _, name := range names {
				k := kinds[name]
				sum := 0
				for st, c := range k.byStatus {
					sum += c
					if st >= 500 {
						total5xx += c
					}
				}
				t.Logf("%-20s %5d requests, by status %v", name, sum, k.byStatus)
			}
			panics := strings.Count(logs.String(), "handler panicked")
			errorLines := strings.Count(logs.String(), `"level":"error"`)
			t.Logf("seed %d: %d requests, %d 5xx, %d panics, %d error log lines, %d failures (%d resent after a closed keep-alive connection)",
				seed, n, total5xx, panics, errorLines, len(failures), retried)
			for i, f := range failures {
				if i == 20 {
					t.Errorf("... and %d more", len(failures)-20)
					break
				}
				t.Error(f)
			}
			if panics > 0 || errorLines > 0 {
				t.Errorf("%d panics and %d error-level log lines:\n%s", panics, errorLines, grepLine(logs.String(), `"level":"error"`))
			}
			if after := written(t, base); after != before {
				t.Errorf("the hostile requests changed the store:\nbefore %s\nafter  %s", before, after)
			}
			if err := stop(); err != nil {
				t.Errorf("stop: %v", err)
			}
		})
	}
}

// slowClients holds n connections that send their headers one byte a
// second; the server must cut each of them (closed at its read-header
// timeout) while it keeps answering the others. The channel is closed when
// every one was cut.
func slowClients(t *testing.T, base string, n int) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
			if err != nil {
				t.Errorf("slow client %d: %v", i, err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Minute)) // a guard
			for _, b := range []byte("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaa") {
				if _, err := c.Write([]byte{b}); err != nil {
					return // cut while writing: as wanted
				}
				if b == ' ' {
					time.Sleep(400 * time.Millisecond) // the attack: dripping the headers
				}
			}
			if n, err := c.Read(make([]byte, 1)); err == nil || n != 0 || os.IsTimeout(err) {
				t.Errorf("slow client %d was not cut: %d, %v", i, n, err)
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

func truncate(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
