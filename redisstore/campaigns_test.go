package redisstore_test

import (
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware/firmwaretest"
	"github.com/m2mbearer/m2mbearer/redisstore/redistest"
)

// TestCampaignsConformance runs the CampaignStore suite against Redis
// (restart: SIGKILL and AOF reload).
func TestCampaignsConformance(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AOF: true})
	prefixOf := map[firmware.CampaignStore]string{}
	open := func(t *testing.T, prefix string) firmware.CampaignStore {
		s := openDB(t, srv, prefix, "n").Campaigns()
		prefixOf[s] = prefix
		return s
	}
	firmwaretest.RunCampaigns(t, firmwaretest.CampaignFactory{
		New: func(t *testing.T) firmware.CampaignStore { return open(t, prefixes(t)) },
		Reopen: func(t *testing.T, s firmware.CampaignStore) firmware.CampaignStore {
			srv.Kill()
			srv.Restart()
			return open(t, prefixOf[s])
		},
	})
}

// TestImagesConformance runs the ImageCatalog suite against Redis, with a
// peer node that has its own image directory.
func TestImagesConformance(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefixOf := map[firmware.ImageCatalog]string{}
	firmwaretest.RunImages(t, firmwaretest.ImageFactory{
		New: func(t *testing.T, _ string) firmware.ImageCatalog {
			p := prefixes(t)
			c := openDB(t, srv, p, "a").Images()
			prefixOf[c] = p
			return c
		},
		Peer: func(t *testing.T, c firmware.ImageCatalog, _ string) firmware.ImageCatalog {
			return openDB(t, srv, prefixOf[c], "b").Images()
		},
	})
}
