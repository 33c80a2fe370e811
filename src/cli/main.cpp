#include "config.hpp"
int main() { return 0; }
