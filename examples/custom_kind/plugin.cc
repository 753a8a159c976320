// The kinds as a plugin for the stock daemon:
//   awaitd --plugin=/path/to/libcustom_kinds.so
#include "server/kinds/plugin.h"

#include "kinds.h"

AWAITD_PLUGIN("custom_kinds", custom_kind::RegisterKinds)
