package cache

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// A minimal RESP3 reader for the near cache's tracking connection (see
// tracker): it reads the replies of the handshake (HELLO, CLIENT TRACKING),
// PONGs and invalidation pushes. go-redis does not hand a connection's push
// messages to its caller, so the connection is the tracker's own.

// respValue is one RESP3 value: kind is its type byte ('+', '-', ':', '$',
// '*', '>', '%', '~', '_', ...), str its text for simple types, elems its
// elements for aggregates (a map's keys and values alternate), null for '_'
// and the null bulk string or array of RESP2.
type respValue struct {
	kind  byte
	str   string
	elems []respValue
	null  bool
}

// errIncomplete: the buffer ends inside a value; read more.
var errIncomplete = errors.New("resp: incomplete")

// maxRespElems bounds an aggregate's length, so a corrupt length cannot
// allocate without bound.
const maxRespElems = 1 << 24

// parseResp parses the value at the start of b and returns it with the
// number of bytes it took, or errIncomplete if b ends inside it.
func parseResp(b []byte) (respValue, int, error) {
	if len(b) == 0 {
		return respValue{}, 0, errIncomplete
	}
	eol := bytes.Index(b, []byte("\r\n"))
	if eol < 0 {
		return respValue{}, 0, errIncomplete
	}
	kind, line, n := b[0], string(b[1:eol]), eol+2
	switch kind {
	case '+', '-', ':', ',', '(', '#':
		return respValue{kind: kind, str: line}, n, nil
	case '_':
		return respValue{kind: kind, null: true}, n, nil
	case '$', '=', '!':
		return parseRespBulk(b, kind, line, n)
	case '*', '>', '~', '%', '|':
		return parseRespAggregate(b, kind, line, n)
	default:
		return respValue{}, 0, fmt.Errorf("resp: unknown type %q", kind)
	}
}

func parseRespBulk(b []byte, kind byte, line string, n int) (respValue, int, error) {
	size, err := strconv.Atoi(line)
	if err != nil || size < -1 {
		return respValue{}, 0, fmt.Errorf("resp: bad length %q", line)
	}
	if size == -1 {
		return respValue{kind: kind, null: true}, n, nil
	}
	if len(b) < n+size+2 {
		return respValue{}, 0, errIncomplete
	}
	if b[n+size] != '\r' || b[n+size+1] != '\n' {
		return respValue{}, 0, errors.New("resp: bulk string without CRLF")
	}
	return respValue{kind: kind, str: string(b[n : n+size])}, n + size + 2, nil
}

func parseRespAggregate(b []byte, kind byte, line string, n int) (respValue, int, error) {
	count, err := strconv.Atoi(line)
	if err != nil || count < -1 || count > maxRespElems {
		return respValue{}, 0, fmt.Errorf("resp: bad length %q", line)
	}
	if count == -1 {
		return respValue{kind: kind, null: true}, n, nil
	}
	if kind == '%' || kind == '|' {
		count *= 2
	}
	v := respValue{kind: kind, elems: make([]respValue, 0, min(count, 1024))}
	for range count {
		e, m, err := parseResp(b[n:])
		if err != nil {
			return respValue{}, 0, err
		}
		v.elems = append(v.elems, e)
		n += m
	}
	if kind == '|' {
		// An attribute precedes the value it describes: return that value.
		e, m, err := parseResp(b[n:])
		if err != nil {
			return respValue{}, 0, err
		}
		return e, n + m, nil
	}
	return v, n, nil
}

// appendRespCommand appends args as a RESP array of bulk strings.
func appendRespCommand(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}
