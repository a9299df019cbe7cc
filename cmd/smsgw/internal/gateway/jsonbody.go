package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"
)

// JSON request bodies are strict: at most maxBody bytes (413 beyond),
// valid UTF-8, one JSON object, no unknown fields, nothing after it (400
// for each). Handlers decode with decodeBody (a body is required) or
// decodeOptionalBody (an empty body means the zero value).

// bodyProblem is a refused request body: the HTTP status and the message.
type bodyProblem struct {
	code int
	msg  string
}

func (p *bodyProblem) Error() string { return p.msg }

// parseJSONBody reads a request body from r (bounded by the caller, e.g.
// by http.MaxBytesReader) and decodes it strictly into v. An empty body is
// an error when required, else leaves v as it is.
func parseJSONBody(r io.Reader, v any, required bool) *bodyProblem {
	data, err := io.ReadAll(r)
	if err != nil {
		if code, msg, ok := bodyError(err); ok {
			return &bodyProblem{code, msg}
		}
		return &bodyProblem{http.StatusBadRequest, "reading the request body: " + err.Error()}
	}
	return decodeJSONBytes(data, v, required)
}

// decodeJSONBytes is parseJSONBody's check and decoding of a whole body.
func decodeJSONBytes(data []byte, v any, required bool) *bodyProblem {
	if len(data) > maxBody {
		return &bodyProblem{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", maxBody)}
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		if required {
			return &bodyProblem{http.StatusBadRequest, "a JSON object body is required"}
		}
		return nil
	}
	if !utf8.Valid(data) {
		at := 0
		for at < len(data) {
			r, n := utf8.DecodeRune(data[at:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			at += n
		}
		return &bodyProblem{http.StatusBadRequest, fmt.Sprintf("request body is not valid UTF-8 (byte %d)", at)}
	}
	if trimmed[0] != '{' {
		return &bodyProblem{http.StatusBadRequest, "request body must be a JSON object ({...})"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &bodyProblem{http.StatusBadRequest, "bad JSON body: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &bodyProblem{http.StatusBadRequest, fmt.Sprintf("bad JSON body: data after the JSON object (byte %d)", dec.InputOffset())}
	}
	return nil
}

// decodeBody decodes a required JSON body into v, or answers the error
// and returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeRequest(w, r, v, true)
}

// decodeOptionalBody is decodeBody for routes whose body may be empty.
func decodeOptionalBody(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeRequest(w, r, v, false)
}

func decodeRequest(w http.ResponseWriter, r *http.Request, v any, required bool) bool {
	var body io.Reader = http.NoBody
	if r.Body != nil {
		// The guard bounds it already; this bounds handlers mounted
		// without it (tests, other muxes).
		body = http.MaxBytesReader(w, r.Body, maxBody)
	}
	if p := parseJSONBody(body, v, required); p != nil {
		if p.code == http.StatusRequestEntityTooLarge || p.code == http.StatusRequestTimeout {
			w.Header().Set("Connection", "close")
		}
		writeError(w, p.code, p.msg)
		return false
	}
	return true
}
