// awaitctl: the command-line client of awaitd (see app.h, and
// `awaitctl --help`).
#include "client/awaitctl/app.h"

int main(int argc, char** argv) { return awaitd::awaitctl::Main(argc, argv); }
