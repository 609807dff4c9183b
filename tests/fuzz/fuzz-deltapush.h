#ifndef FUZZ_DELTAPUSH_H
#define FUZZ_DELTAPUSH_H

/* libFuzzer's entry point; each fuzz-deltapush-*.c defines it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Call first in LLVMFuzzerTestOneInput(): initializes libdovecot once
   and makes sure fds 0-2 are open, as Dovecot's code assumes. (Dovecot
   2.3's own fuzzer_init()/fuzzer_deinit() close fd 0 after every input,
   so they are not used.) */
void deltapush_fuzz_init(void);

#endif
