/* End to end through ./pare: the reference protocol, generation, info, and bad input giving
 * exit status 2 with one line naming the file. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "refdata.h"

void suite_cli(void);
void suite_cli(void) {}
