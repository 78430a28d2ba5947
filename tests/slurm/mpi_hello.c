/* mpi_hello: the smallest proof that a launcher wired MPI up. Each rank
 * prints its rank, the world size and its host, then all ranks sum their
 * ranks with MPI_Allreduce, so a run that only starts N singletons (size 1
 * each) or cannot talk between ranks is caught. Exit 0 only if the sum is
 * size*(size-1)/2 on every rank. Deliberately not part of the ctrain build. */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, size = 0, len = 0, sum = -1;
    char host[MPI_MAX_PROCESSOR_NAME];
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &len);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int ok = sum == size * (size - 1) / 2;
    printf("hello rank %d of %d on %s allreduce %d %s\n", rank, size, host, sum, ok ? "ok" : "BAD");
    fflush(stdout);
    MPI_Finalize();
    return ok ? 0 : 1;
}
