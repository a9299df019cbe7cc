package gateway

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
)

// The web UI: plain HTML, CSS and JS embedded in the binary (no build
// step), talking to the JSON API with the same bearer token.
//
//go:embed ui
var uiFiles embed.FS

func uiHandler() http.Handler {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		// The embedded tree is fixed at build time.
		return http.NotFoundHandler()
	}
	return http.StripPrefix("/ui/", http.FileServer(http.FS(sub)))
}

// ResourceJSON describes a resource of the object model for the UI.
type ResourceJSON struct {
	ID         uint16 `json:"id"`
	Name       string `json:"name"`
	Operations string `json:"operations"`
	Type       string `json:"type"`
	Multiple   bool   `json:"multiple"`
	Units      string `json:"units,omitempty"`
}

func (g *Gateway) getObject(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 16)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("object ID %q is not a number", r.PathValue("id")))
		return
	}
	o, ok := g.model.Object(uint16(id))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("object %d is not in the object model", id))
		return
	}
	res := make([]ResourceJSON, 0, len(o.Resources))
	for _, rs := range o.Resources {
		res = append(res, ResourceJSON{ID: rs.ID, Name: rs.Name, Operations: rs.Operations.String(), Type: rs.Type.String(),
			Multiple: rs.Multiple, Units: rs.Units})
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": o.ID, "name": o.Name, "version": o.Version, "multiple": o.Multiple, "resources": res})
}
