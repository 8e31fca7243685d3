package prod

import "os"

func inTest() { _ = os.Getenv("PLEXUS_REQUIRE_ROOT") }
