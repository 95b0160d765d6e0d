/* signals.c -- keep the collector's stop-the-world signals working inside
 * programs that were not written for it.
 *
 * Design: docs/malloc-replacement.md, "Signals".  The collector stops
 * threads with two signals (by default SIGPWR and SIGXCPU).  Real programs
 * get in the way: sort, gzip and make install handlers for SIGXCPU (and
 * die on it), and many programs block every signal around critical
 * sections, which would make a thread impossible to stop.  So:
 *
 *   - unless the user chose signals (CGC_SIG_SUSPEND / CGC_SIG_RESTART),
 *     the shim hands the collector two real-time signals, SIGRTMIN+4 and
 *     SIGRTMIN+5, that programs hardly ever use; the choice is passed
 *     through a private copy of the environment shown to cgc_init only;
 *   - sigaction() and signal() calls that would replace the handler of
 *     either signal are ignored (reported as successful);
 *   - sigprocmask() and pthread_sigmask() never block either signal.
 *
 * .inv.protect: cgci_shim_sig[] holds the collector's two signal numbers
 *   (ours or the user's choice) once it has installed its handlers, 0
 *   before.
 */
#include "shim/shim.h"
#include "core/internal.h"              /* cgci_g.sig_suspend, sig_restart */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SHIM_EXPORT __attribute__((visibility("default")))
#define ENV_MAX 4096

int cgci_shim_sig[2];

static char **saved_environ;
static char *env_copy[ENV_MAX];
static char env_suspend[] = "CGC_SIG_SUSPEND=RTMIN+4";
static char env_restart[] = "CGC_SIG_RESTART=RTMIN+5";
static int pending_protect;

void cgci_shim_signals_before_init(void)
{
  extern char **environ;
  size_t n = 0;

  if (cgci_shim_getenv("CGC_SIG_SUSPEND") != NULL ||
      cgci_shim_getenv("CGC_SIG_RESTART") != NULL)
    return;                          /* the user's choice stands */
  saved_environ = environ;
  while (environ != NULL && environ[n] != NULL)
    n++;
  if (n + 3 > ENV_MAX)
    return;
  if (n > 0)
    memcpy(env_copy, environ, n * sizeof env_copy[0]);
  env_copy[n++] = env_suspend;
  env_copy[n++] = env_restart;
  env_copy[n] = NULL;
  environ = env_copy;
  pending_protect = 1;
}

void cgci_shim_signals_after_init(void)
{
  extern char **environ;

  if (pending_protect && environ == env_copy)
    environ = saved_environ;
  pending_protect = 0;
  /* Whoever chose them, these are the signals the collector now uses. */
  cgci_shim_sig[0] = cgci_g.sig_suspend;
  cgci_shim_sig[1] = cgci_g.sig_restart;
}

static int is_protected(int sig)
{
  return sig > 0 && (sig == cgci_shim_sig[0] || sig == cgci_shim_sig[1]);
}

extern int __sigaction(int, const struct sigaction *, struct sigaction *);

SHIM_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
  if (is_protected(sig) && act != NULL) {
    if (old != NULL) {
      memset(old, 0, sizeof *old);
      old->sa_handler = SIG_DFL;
    }
    return 0;
  }
  return __sigaction(sig, act, old);
}

SHIM_EXPORT __sighandler_t signal(int sig, __sighandler_t handler)
{
  struct sigaction act, old;

  if (is_protected(sig))
    return SIG_DFL;
  memset(&act, 0, sizeof act);
  act.sa_handler = handler;
  sigemptyset(&act.sa_mask);
  sigaddset(&act.sa_mask, sig);
  act.sa_flags = SA_RESTART;        /* BSD semantics, as glibc's signal */
  if (__sigaction(sig, &act, &old) < 0)
    return SIG_ERR;
  return old.sa_handler;
}

/* mask_call -- rt_sigprocmask with our signals (and glibc's two internal
 * ones, as glibc's own wrapper does) removed from a blocking set.
 * Returns 0 or an errno value. */
static int mask_call(int how, const sigset_t *set, sigset_t *old)
{
  sigset_t copy;
  const sigset_t *use = set;

  if (set != NULL && how != SIG_UNBLOCK) {
    memcpy(&copy, set, sizeof copy);
    unsigned long *w = (unsigned long *)(void *)&copy;
    w[0] &= ~((1UL << (32 - 1)) | (1UL << (33 - 1)));   /* SIGCANCEL, SIGSETXID */
    for (int i = 0; i < 2; i++)
      if (cgci_shim_sig[i] > 0)
        sigdelset(&copy, cgci_shim_sig[i]);
    use = &copy;
  }
  long r = syscall(SYS_rt_sigprocmask, how, use, old, (size_t)(_NSIG / 8));
  return r == 0 ? 0 : errno;
}

SHIM_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
  int e = mask_call(how, set, old);
  if (e != 0) {
    errno = e;
    return -1;
  }
  return 0;
}

SHIM_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
  int saved = errno;
  int e = mask_call(how, set, old);
  errno = saved;
  return e;
}
