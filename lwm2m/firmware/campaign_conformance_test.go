package firmware_test

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware/firmwaretest"
)

// TestCampaignStoreConformance runs the CampaignStore suite against
// bbolt (redisstore runs it against Redis).
func TestCampaignStoreConformance(t *testing.T) {
	paths := map[firmware.CampaignStore]string{}
	dbs := map[firmware.CampaignStore]*bolt.DB{}
	open := func(t *testing.T, p string) firmware.CampaignStore {
		db, err := bolt.Open(p, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s, err := firmware.NewBoltCampaigns(db)
		if err != nil {
			t.Fatal(err)
		}
		paths[s], dbs[s] = p, db
		return s
	}
	firmwaretest.RunCampaigns(t, firmwaretest.CampaignFactory{
		New: func(t *testing.T) firmware.CampaignStore { return open(t, filepath.Join(t.TempDir(), "c.db")) },
		Reopen: func(t *testing.T, s firmware.CampaignStore) firmware.CampaignStore {
			dbs[s].Close()
			return open(t, paths[s])
		},
	})
}

// TestImageCatalogConformance runs the ImageCatalog suite against the
// directory catalog (redisstore runs it against Redis).
func TestImageCatalogConformance(t *testing.T) {
	firmwaretest.RunImages(t, firmwaretest.ImageFactory{
		New: func(_ *testing.T, dir string) firmware.ImageCatalog { return firmware.DirCatalog{Dir: dir} },
	})
}
